// The panel's own script: small behaviours that would otherwise be inline event handlers, which
// the Content-Security-Policy (panel/settings.py) refuses. Loaded with defer from base.html.
"use strict";

// <input data-select-on-focus>: select the whole value when it gets focus (a new API key).
document.addEventListener("focusin", (event) => {
  const target = event.target;
  if (target instanceof HTMLInputElement && target.hasAttribute("data-select-on-focus")) {
    target.select();
  }
});

// <form data-confirm="Question?">: ask before submitting (ending sessions). Without JavaScript
// the form submits straight away, which is still a deliberate POST.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.hasAttribute("data-confirm")) {
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  }
});
