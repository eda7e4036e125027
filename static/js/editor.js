// The document editor's live preview: posts the Markdown to the server, which answers with the
// sanitised HTML and the redline against the current version. Without JavaScript the form's
// "Preview" button does the same with a full page load.
(function () {
  "use strict";
  var form = document.getElementById("editor-form");
  if (!form) { return; }
  var source = form.querySelector("textarea[name=source]");
  var token = form.querySelector("input[name=csrf_token]");
  var html = document.getElementById("preview-html");
  var redline = document.getElementById("preview-redline");
  var status = document.getElementById("preview-status");
  var timer = null;
  var latest = 0;

  function show(message) { status.textContent = message; }

  function refresh() {
    var ticket = ++latest;
    var body = new FormData();
    body.append("source", source.value);
    body.append("document", form.dataset.document);
    body.append("change_set", form.dataset.changeSet);
    show("Updating preview…");
    fetch(form.dataset.previewUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": token.value, "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (result) {
      if (ticket !== latest) { return; }  // a newer request is on its way
      if (!result.ok) {
        show((result.data.error && result.data.error.message) || "The preview is not available.");
        return;
      }
      // Both fragments were sanitised by the server (nh3) before they were sent.
      html.innerHTML = result.data.html;
      redline.innerHTML = result.data.redline;
      show("Preview updated: " + result.data.words_inserted + " words inserted, " +
           result.data.words_deleted + " deleted.");
    }).catch(function () {
      if (ticket === latest) { show("The preview could not be updated; use the Preview button."); }
    });
  }

  source.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 400);
  });
  refresh();
}());
