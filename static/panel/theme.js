// The colour mode, loaded in <head> without defer so that it runs before the first paint (no
// flash of the wrong colours). The server writes the customer's choice on <html>:
// data-theme-choice="light|dark|auto" and data-bs-theme="light|dark" (Bootstrap 5.3 colour
// modes). Only "auto" needs this script: it follows the device's prefers-color-scheme, now and
// when it changes. Without JavaScript "auto" stays light.
"use strict";

(() => {
  const root = document.documentElement;
  if (root.dataset.themeChoice !== "auto" || !window.matchMedia) {
    return;
  }
  const dark = window.matchMedia("(prefers-color-scheme: dark)");
  const apply = () => root.setAttribute("data-bs-theme", dark.matches ? "dark" : "light");
  apply();
  dark.addEventListener("change", apply);
})();
