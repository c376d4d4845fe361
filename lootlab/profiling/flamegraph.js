/* lootlab's flame graph: click a frame to zoom into it, click the root bar to reset.
   Embedded once per SVG inside an IIFE, so several graphs on one HTML page do not share
   state.  Each <g class="lf"> carries its position as fractions of the root (data-x, data-w)
   and its name (data-n); the <svg> carries the drawing width and left pad (data-lf-width,
   data-lf-pad), so this file is the same for every graph.  Must not contain a CDATA end. */
(function () {
  var s = document.currentScript, svg = s && (s.ownerSVGElement || s.closest('svg'));
  if (!svg) return;
  var W = +svg.dataset.lfWidth, P = +svg.dataset.lfPad, gs = svg.querySelectorAll('g.lf');
  function zoom(x0, w0) {
    gs.forEach(function (g) {
      var x = +g.dataset.x, w = +g.dataset.w,
        r = g.querySelector('rect'), t = g.querySelector('text');
      var nx = (x - x0) / w0, nw = w / w0;
      if (nx + nw <= 0 || nx >= 1 || nw * W < 0.5) { g.style.display = 'none'; return; }
      g.style.display = '';
      var px = P + Math.max(nx, 0) * W, pw = (Math.min(nx + nw, 1) - Math.max(nx, 0)) * W;
      r.setAttribute('x', px);
      r.setAttribute('width', Math.max(pw - 0.5, 0.1));
      t.setAttribute('x', px + 3);
      var n = g.dataset.n, c = Math.floor((pw - 6) / 7);  // about 7 px per character
      t.textContent = c >= 3 ? (n.length > c ? n.slice(0, c - 2) + '..' : n) : '';
    });
  }
  gs.forEach(function (g) {
    g.style.cursor = 'pointer';
    g.addEventListener('click', function () {
      if (g.dataset.root) zoom(0, 1); else zoom(+g.dataset.x, +g.dataset.w);
    });
  });
})();
