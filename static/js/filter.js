// Instant filtering of the sub-processor table; the form still works without JavaScript.
(function () {
  "use strict";
  var form = document.querySelector("form.filters");
  var table = document.getElementById("subprocessor-table");
  var count = document.getElementById("result-count");
  if (!form || !table || !count) { return; }
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var countText = count.firstChild;
  var asOf = form.elements.as_of ? form.elements.as_of.value : "";

  function apply() {
    var words = form.elements.q.value.toLowerCase().split(/\s+/).filter(Boolean);
    var purpose = form.elements.purpose.value;
    var country = form.elements.country.value;
    var mechanism = form.elements.mechanism.value;
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.getAttribute("data-search");
      var ok = words.every(function (w) { return text.indexOf(w) !== -1; }) &&
        (!purpose || row.getAttribute("data-purpose") === purpose) &&
        (!country || row.getAttribute("data-countries").split(" ").indexOf(country) !== -1) &&
        (!mechanism || row.getAttribute("data-mechanism") === mechanism);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var filtered = words.length || purpose || country || mechanism;
    countText.nodeValue = shown + " sub-processor" + (shown === 1 ? "" : "s") +
      (filtered ? " match your filters. " : ". ");
  }

  form.addEventListener("input", function (event) {
    // Sorting and the date change what the server returns; those still submit the form.
    if (event.target.name === "sort" || event.target.name === "as_of") { return; }
    apply();
  });
  form.addEventListener("change", function (event) {
    if (event.target.name === "sort" || (event.target.name === "as_of" && event.target.value !== asOf)) {
      form.submit();
    }
  });
})();
