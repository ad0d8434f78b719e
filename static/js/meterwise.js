/* Behaviour every page shares, kept out of the markup: the Content-Security-Policy
   (script-src 'self') runs no inline scripts or on*= handlers, and htmx's hx-on would need eval.
   - data-confirm="Question?" on a form or its submit button asks before submitting.
   - data-swap-refusals on a region lets htmx show a 400 answer (a refusal with its reason)
     in that region's targets instead of dropping it as an error. */
(function () {
  "use strict";
  // Capture phase: runs before htmx's own submit handler, so a "Cancel" stops htmx too.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var asker = (event.submitter && event.submitter.closest("[data-confirm]")) || form.closest("[data-confirm]");
    if (asker && !window.confirm(asker.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
  document.addEventListener("htmx:beforeSwap", function (event) {
    var from = event.detail.elt || event.target;
    if (event.detail.xhr.status === 400 && from.closest && from.closest("[data-swap-refusals]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
