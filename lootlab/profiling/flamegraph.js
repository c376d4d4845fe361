/* lootlab's flame graph: laid out at the width it is shown at, click a frame to zoom into it
   (the root bar resets), type in the search box to highlight frames and see their share.
   Embedded once per SVG inside an IIFE, so several graphs on one HTML page do not share
   state.  Each <g class="lf"> carries its panel (data-p), depth (data-d), position as
   fractions of its panel's root (data-x, data-w), shares for the search (data-s, one per
   name in the svg's data-lf-names) and its name (data-n); the <svg> carries the left pad,
   the gap between panels and the number of panels, so this file is the same for every
   graph.  Must not contain a CDATA end. */
(function () {
  var s = document.currentScript, svg = s && (s.ownerSVGElement || s.closest('svg'));
  if (!svg) return;
  var SVGNS = 'http://www.w3.org/2000/svg', XHTML = 'http://www.w3.org/1999/xhtml';
  var d = svg.dataset, P = +d.lfPad, G = +d.lfGap || 0, N = +d.lfPanels || 1;
  var names = (d.lfNames || 'samples').split('|'), H = +svg.getAttribute('height');
  var gs = [].slice.call(svg.querySelectorAll('g.lf'));
  var zoomAt = [], laidOut = -1, cpx = 0;
  for (var k = 0; k < N; k++) zoomAt.push([0, 1]);

  function charPx(t) {               // average label character width in this font
    if (cpx) return cpx;
    var probe = 'near (lootlab/index.py:231) GrpcClient._query', old = t.textContent;
    t.textContent = probe;
    cpx = t.getComputedTextLength() / probe.length || 7;
    t.textContent = old;
    return cpx;
  }
  function fit(t, n, px) {           // the longest label that fits px, else nothing
    var room = px - 6, c = Math.floor(room / charPx(t)), str, i = 0;
    for (;;) {
      str = c < 3 ? '' : (n.length > c ? n.slice(0, c - 2) + '..' : n);
      t.textContent = str;
      if (!str || i++ > 4) return;
      var len = t.getComputedTextLength();
      if (len <= room) return;
      c = Math.min(c - 1, Math.floor(c * room / len));
    }
  }
  function width() {
    var w = svg.getBoundingClientRect().width;
    return w > 50 ? w : +d.lfWidth + 2 * P;
  }
  function layout(force) {
    var cw = width();
    if (!force && Math.abs(cw - laidOut) < 1) return;
    laidOut = cw;
    svg.setAttribute('viewBox', '0 0 ' + cw + ' ' + H);
    var W = cw - 2 * P, pw = (W - G * (N - 1)) / N;
    gs.forEach(function (g) {
      var p = +g.dataset.p || 0, z = zoomAt[p], r = g.querySelector('rect'),
        t = g.querySelector('text'), x = +g.dataset.x, w = +g.dataset.w;
      var nx = (x - z[0]) / z[1], nw = w / z[1];
      if (nx + nw <= 1e-9 || nx >= 1 - 1e-9 || nw * pw < 0.3) { g.style.display = 'none'; return; }
      g.style.display = '';
      var a = Math.max(nx, 0), px = P + p * (pw + G) + a * pw, wpx = (Math.min(nx + nw, 1) - a) * pw;
      r.setAttribute('x', px);
      r.setAttribute('width', Math.max(wpx - 0.5, 0.1));
      t.setAttribute('x', px + 3);
      fit(t, g.dataset.n, wpx);
    });
    [].forEach.call(svg.querySelectorAll('text.lf-heading'), function (t) {
      t.dataset.full = t.dataset.full || t.textContent;
      t.setAttribute('x', P + (+t.dataset.p || 0) * (pw + G));
      fit(t, t.dataset.full, pw);
    });
    [].forEach.call(svg.querySelectorAll('text.lf-title, text.lf-note'), function (t) {
      t.dataset.full = t.dataset.full || t.textContent;
      fit(t, t.dataset.full, W + 6);
    });
    var lx = P;                      // legend items in a row, spaced by their real widths
    [].forEach.call(svg.querySelectorAll('g.lf-legend'), function (e) {
      var r = e.querySelector('rect'), t = e.querySelector('text');
      if (r) { r.setAttribute('x', lx); lx += 16; }
      if (t) { t.setAttribute('x', lx); lx += t.getComputedTextLength() + 8; }
      e.style.display = lx > cw - P + 8 ? 'none' : '';
    });
    if (box) box.setAttribute('width', Math.max(W, 100));
  }

  // -- search ---------------------------------------------------------------------------
  var box = null, input = null, out = null;
  function pct(v) { return v > 0 && v < 0.0005 ? '< 0.1 %' : (100 * v).toFixed(1) + ' %'; }
  function matcher(q) {
    var m = /^\/(.+)\/([imsu]*)$/.exec(q);
    if (m) { var re = new RegExp(m[1], m[2]); return function (n) { return re.test(n); }; }
    var low = q.toLowerCase();
    return function (n) { return n.toLowerCase().indexOf(low) >= 0; };
  }
  function search(q) {
    var test = null;
    if (q) {
      try { test = matcher(q); } catch (e) { out.textContent = 'not a regular expression: ' + e.message; }
    }
    var hits = [];
    gs.forEach(function (g) {
      var r = g.querySelector('rect'), hit = !!test && test(g.dataset.n);
      if (!r.dataset.f) r.dataset.f = r.getAttribute('fill');
      r.setAttribute('fill', hit ? 'rgb(230,0,230)' : r.dataset.f);
      if (hit) { g.setAttribute('data-match', '1'); hits.push(g); } else g.removeAttribute('data-match');
    });
    if (!test) { if (!q) out.textContent = ''; return; }
    if (!hits.length) { out.textContent = 'no frame matches'; return; }
    // a sample counts once: skip matches inside an earlier, enclosing match of the same panel
    hits.sort(function (a, b) {
      return (a.dataset.p - b.dataset.p) || (a.dataset.x - b.dataset.x) || (a.dataset.d - b.dataset.d);
    });
    var sums = names.map(function () { return 0; }), panel = -1, end = -1;
    hits.forEach(function (g) {
      var x = +g.dataset.x, p = +g.dataset.p || 0;
      if (p !== panel) { panel = p; end = -1; }
      if (x < end - 1e-9) return;
      end = x + (+g.dataset.w);
      g.dataset.s.split(' ').forEach(function (v, i) { sums[i] += +v; });
    });
    out.textContent = hits.length + (hits.length === 1 ? ' frame: ' : ' frames: ') +
      names.map(function (n, i) { return pct(sums[i]) + ' of ' + n; }).join(', ');
  }
  function searchBox() {
    box = document.createElementNS(SVGNS, 'foreignObject');
    box.setAttribute('x', P);
    box.setAttribute('y', +d.lfSearchY || 44);
    box.setAttribute('height', 24);
    box.setAttribute('class', 'lf-search');
    var div = document.createElementNS(XHTML, 'div');
    div.setAttribute('style', 'font:12px Verdana,sans-serif;display:flex;gap:8px;align-items:center;white-space:nowrap;overflow:hidden');
    input = document.createElementNS(XHTML, 'input');
    input.setAttribute('type', 'search');
    input.setAttribute('placeholder', 'search frames: name or /regex/');
    input.setAttribute('aria-label', 'search frames by name (a substring, or /regex/)');
    input.setAttribute('style', 'font:12px Verdana,sans-serif;width:16em;padding:1px 4px');
    out = document.createElementNS(XHTML, 'span');
    out.setAttribute('class', 'lf-search-result');
    out.setAttribute('aria-live', 'polite');
    div.appendChild(input);
    div.appendChild(out);
    box.appendChild(div);
    svg.insertBefore(box, gs[0] || null);
    input.addEventListener('input', function () { search(input.value.trim()); });
    input.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') { input.value = ''; search(''); }
    });
  }

  searchBox();
  gs.forEach(function (g) {
    g.style.cursor = 'pointer';
    g.addEventListener('click', function () {
      var p = +g.dataset.p || 0;
      zoomAt[p] = g.dataset.root ? [0, 1] : [+g.dataset.x, +g.dataset.w];
      layout(true);
    });
  });
  layout(true);
  if (window.ResizeObserver) new ResizeObserver(function () { layout(false); }).observe(svg);
  else window.addEventListener('resize', function () { layout(false); });
})();
