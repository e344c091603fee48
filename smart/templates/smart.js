// Each form on these pages is submitted once. A double click on "Allow"
// would otherwise send the consent twice: the server refuses the second
// (a consent is used once), and the browser, showing the answer to the
// second, would drop the first one's redirect to the app and its code.
// Loaded in the head without defer: the listener is on the document before
// any button can be pressed.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.method.toLowerCase() !== "post") {
    return;
  }
  if (form.dataset.submitted) {
    event.preventDefault();
    return;
  }
  form.dataset.submitted = "true";
  form.setAttribute("aria-busy", "true");
});
// A page brought back by the Back button may be submitted again.
window.addEventListener("pageshow", function (event) {
  if (event.persisted) {
    document.querySelectorAll("form[data-submitted]").forEach(function (form) {
      delete form.dataset.submitted;
      form.removeAttribute("aria-busy");
    });
  }
});
