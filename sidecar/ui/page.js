// peersync's page: live status (server-sent events) and the sync-now button without a reload.
// The page works without this script: forms post and pages reload.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var live = document.getElementById("live");
  if (live && window.EventSource) {
    var events = new EventSource("/events");
    events.addEventListener("status", function (e) {
      // The server renders this HTML and escapes every value in it.
      live.innerHTML = e.data;
    });
  }
  var form = document.getElementById("sync-now");
  if (form && window.fetch) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var said = document.getElementById("sync-said");
      var csrf = form.querySelector("input[name=csrf]").value;
      fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf },
        body: new URLSearchParams(new FormData(form)).toString(),
        credentials: "same-origin",
        redirect: "manual"
      }).then(function (r) {
        said.textContent = (r.ok || r.type === "opaqueredirect") ? "Sync started." : "Sync could not start (" + r.status + ").";
      }, function () { said.textContent = "Sync could not start."; });
    });
  }
});
