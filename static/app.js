// IAM Gateway pages: small enhancements only. Every form works without this
// file; it is served by the gateway itself (CSP: script-src 'self').
(function () {
  "use strict";

  // Ask before destructive forms (data-confirm="question").
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      ev.preventDefault();
    }
  });

  // Copy buttons (data-copy="id of a read-only input"), hidden until usable.
  function copyFrom(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        field.select();
      });
    } else {
      field.focus();
      field.select();
      try { if (document.execCommand("copy")) done(); } catch (e) { /* selected for the person to copy */ }
    }
  }
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { copyFrom(button); });
  });

  // Read-only secret fields select themselves on focus.
  document.querySelectorAll("input[readonly].mono").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });

  // Role fields: the resource scope matters only for resource roles.
  document.querySelectorAll("[data-policy-fields]").forEach(function (box) {
    var select = box.querySelector("[data-role-select]");
    var scope = box.querySelector("[data-scope]");
    if (!select || !scope) return;
    var sync = function () {
      var opt = select.options[select.selectedIndex];
      scope.hidden = !(opt && opt.getAttribute("data-scopable") === "true");
    };
    select.addEventListener("change", sync);
    sync();
  });

  // SSO connection form: show the fields of the chosen protocol.
  document.querySelectorAll("form").forEach(function (form) {
    var radios = form.querySelectorAll("input[name=kind]");
    if (!radios.length) return;
    var sync = function () {
      var kind = form.querySelector("input[name=kind]:checked");
      form.querySelectorAll("[data-kind]").forEach(function (set) {
        set.hidden = !kind || set.getAttribute("data-kind") !== kind.value;
      });
    };
    radios.forEach(function (r) { r.addEventListener("change", sync); });
    sync();
  });
})();
