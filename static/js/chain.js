// "Add a row" under the chain of the sub-processor form: a copy of the last row, emptied and numbered
// after it. The form works without it: it always ends with blank rows.
(function () {
  "use strict";
  var chain = document.getElementById("chain");
  if (!chain) { return; }
  var button = document.createElement("button");
  button.type = "button";
  button.className = "button-quiet";
  button.textContent = "Add a row";
  button.addEventListener("click", function () {
    var rows = chain.querySelectorAll("[data-chain-row]");
    var last = rows[rows.length - 1];
    var match = /^chain-(\d+)-/.exec(last.querySelector("input").name);
    var index = match ? Number(match[1]) + 1 : rows.length;
    var copy = last.cloneNode(true);
    copy.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
    copy.querySelectorAll("[id], [name], [for], [aria-describedby]").forEach(function (el) {
      ["id", "name", "for"].forEach(function (attr) {
        var value = el.getAttribute(attr);
        if (value) { el.setAttribute(attr, value.replace(/^chain-\d+-/, "chain-" + index + "-")); }
      });
      var described = el.getAttribute("aria-describedby");
      if (described) {
        var kept = described.split(" ").filter(function (id) { return !/-error$/.test(id); })
          .map(function (id) { return id.replace(/^chain-\d+-/, "chain-" + index + "-"); });
        if (kept.length) { el.setAttribute("aria-describedby", kept.join(" ")); }
        else { el.removeAttribute("aria-describedby"); }
      }
    });
    copy.querySelectorAll("input").forEach(function (el) {
      el.value = "";
      el.setAttribute("aria-invalid", "false");
    });
    copy.querySelectorAll("select").forEach(function (el) { el.selectedIndex = 0; });
    copy.querySelector("legend").textContent = "Sub-processor " + (rows.length + 1);
    last.after(copy);
    copy.querySelector("input").focus();
  });
  chain.appendChild(button);
}());
