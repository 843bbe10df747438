// The referral page: <button data-copy="#input">Copy</button> copies the input's value to the
// clipboard and says so on the button for a moment. Without the Clipboard API (plain http
// outside localhost) it selects the text, so that Ctrl+C copies it.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!(button instanceof HTMLButtonElement)) {
    return;
  }
  const input = document.querySelector(button.dataset.copy);
  if (!(input instanceof HTMLInputElement)) {
    return;
  }
  const label = button.textContent;
  const done = () => {
    button.textContent = button.dataset.copiedText || "Copied";
    window.setTimeout(() => {
      button.textContent = label;
    }, 2000);
  };
  input.select();
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(done, () => input.select());
  } else if (document.execCommand("copy")) {
    done();
  }
});
