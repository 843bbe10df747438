// The admin's Markdown preview (content/admin.py MarkdownPreviewMixin): as staff type in the
// body, the server renders and sanitizes it (the preview URL, nothing is saved) and the box
// shows the result, as customers will see it. The HTML comes back sanitized by the panel.
(function () {
  "use strict";
  function start() {
    var box = document.querySelector(".markdown-preview[data-preview-url]");
    var body = document.getElementById("id_body");
    if (!box || !body || !body.form) return;
    var token = body.form.querySelector("input[name=csrfmiddlewaretoken]");
    var timer = null;
    var sent = 0;
    function refresh() {
      var mine = ++sent;
      var data = new FormData();
      data.append("body", body.value);
      fetch(box.dataset.previewUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRFToken": token ? token.value : "" },
      })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { if (mine === sent) box.innerHTML = html; })
        .catch(function () { /* the last preview stays; saving still works */ });
    }
    body.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 300);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
