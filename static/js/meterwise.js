/* Behaviour every page shares, kept out of the markup: the Content-Security-Policy
   (script-src 'self') runs no inline scripts or on*= handlers, and htmx's hx-on would need eval.
   - data-confirm="Question?" on a form or its submit button asks before submitting.
   A 400 answer (a refusal with its reason) is swapped like a success: see htmx-config in base.html. */
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
})();
