/* Marks every sideways-scrolling wrapper that has more to its right (ll-more-right) or to
   its left (ll-more-left), on load, resize and scroll; readable.css draws the shadows. */
(function () {
  var SEL = '.ll-table-wrap, .scroll, .lootlab-table-scroll, .jp-OutputArea-output, figure';
  function mark(w) {
    var more = w.scrollWidth - w.clientWidth;
    w.classList.toggle('ll-more-right', more > 1 && w.scrollLeft < more - 1);
    w.classList.toggle('ll-more-left', more > 1 && w.scrollLeft > 1);
  }
  function all() { document.querySelectorAll(SEL).forEach(mark); }
  document.addEventListener('scroll', function (e) {
    if (e.target.matches && e.target.matches(SEL)) mark(e.target);
  }, true);
  window.addEventListener('resize', all);
  window.addEventListener('load', all);
  document.addEventListener('toggle', all, true);   /* a <details> opened or closed */
  if (document.readyState !== 'loading') all();
  else document.addEventListener('DOMContentLoaded', all);
})();
