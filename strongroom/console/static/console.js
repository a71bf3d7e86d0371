// Strongroom console: the few things a page cannot do without script (copy, download). Everything else
// is plain HTML forms, enhanced by htmx (hx-boost). No inline script anywhere: the CSP allows only 'self'.
"use strict";
document.addEventListener("click", function (event) {
  const button = event.target.closest("button[data-copy], button[data-download]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy || button.dataset.download);
  if (!source) return;
  if (button.dataset.copy) {
    const done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(done, function () { source.select(); });
    } else {
      source.select();
      document.execCommand("copy");
      done();
    }
  } else {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([source.value], { type: "application/x-pem-file" }));
    link.download = button.dataset.filename || "private-key.pem";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }
});
// after a boosted page swap, put the keyboard focus on the page's content (as a full load would)
document.addEventListener("htmx:afterSettle", function (event) {
  if (event.detail.boosted) {
    const main = document.getElementById("main");
    if (main) main.focus({ preventScroll: true });
  }
});
