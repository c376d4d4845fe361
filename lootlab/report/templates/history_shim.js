/* Runs first in a flamegraph's srcdoc frame.  The flamegraph script records zoom/search state
   with history.replaceState; inside a srcdoc frame that URL is cross-origin and throws.
   Swallow it: the state is not worth an error. */
(function () {
  var h = window.history, r = h.replaceState.bind(h), p = h.pushState.bind(h);
  h.replaceState = function () { try { r.apply(null, arguments); } catch (e) {} };
  h.pushState = function () { try { p.apply(null, arguments); } catch (e) {} };
})();
