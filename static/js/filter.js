// Instant filtering of the sub-processor table; the form still works without JavaScript.
// Search follows registry/domain/subprocessors.py: case and accents ignored, a term of one or two
// letters (US, AI) matches whole words, a longer one the beginning of a word. Each row carries the
// server's own folded words in data-search. The address bar and the CSV link follow what is shown.
(function () {
  "use strict";
  var form = document.querySelector("form.filters");
  var table = document.getElementById("subprocessor-table");
  var text = document.getElementById("result-text");
  var csv = document.getElementById("csv-link");
  var empty = document.getElementById("no-match");
  if (!form || !table || !text || !csv || !empty) { return; }
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var asOf = form.elements.as_of;
  var served = asOf.value;
  var WHOLE_WORD_ONLY = 2;
  var LETTERS = { "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "\u0131": "i", "æ": "ae", "œ": "oe",
                  "þ": "th", "ð": "d", "ß": "ss" };

  function fold(value) {
    return value.toLowerCase()
      .replace(/[łøđħ\u0131æœþðß]/g, function (c) { return LETTERS[c]; })
      .normalize("NFKD").replace(/\p{M}/gu, "");
  }

  function words(value) {
    return fold(value).match(/[\p{L}\p{N}_]+/gu) || [];
  }

  function matches(haystack, terms) {
    return terms.every(function (term) {
      return haystack.some(function (word) {
        return term.length <= WHOLE_WORD_ONLY ? word === term : word.indexOf(term) === 0;
      });
    });
  }

  // The query the page now shows: the form's values, without the empty ones and the defaults.
  function query() {
    var params = new URLSearchParams();
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || !field.value) { return; }
      if ((field.name === "sort" && field.value === "name") ||
          (field.name === "announced" && field.value === "show")) { return; }
      if (field.name === "as_of" && field.value !== served) { return; }  // not applied yet
      params.append(field.name, field.value);
    });
    return params.toString();
  }

  function apply() {
    var terms = words(form.elements.q.value);
    var purpose = form.elements.purpose.value;
    var country = form.elements.country.value;
    var mechanism = form.elements.mechanism.value;
    var shown = 0;
    rows.forEach(function (row) {
      var ok = matches(row.getAttribute("data-search").split(" "), terms) &&
        (!purpose || row.getAttribute("data-purpose") === purpose) &&
        (!country || row.getAttribute("data-countries").split(" ").indexOf(country) !== -1) &&
        (!mechanism || row.getAttribute("data-mechanism") === mechanism);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var filtered = terms.length || purpose || country || mechanism;
    text.textContent = shown + " sub-processor" + (shown === 1 ? "" : "s") +
      (filtered ? (shown === 1 ? " matches" : " match") + " your filters." : ".");
    empty.hidden = shown !== 0;
    var search = query();
    csv.href = csv.pathname + (search ? "?" + search : "");
    history.replaceState(null, "", location.pathname + (search ? "?" + search : "") + location.hash);
  }

  function isDate(value) {
    var match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
    if (!match) { return false; }
    var day = new Date(Date.UTC(+match[1], +match[2] - 1, +match[3]));
    return day.getUTCFullYear() === +match[1] && day.getUTCMonth() === +match[2] - 1 &&
      day.getUTCDate() === +match[3] && +match[1] >= 1970 && +match[1] <= 2200;
  }

  form.addEventListener("input", function (event) {
    var name = event.target.name;
    if (name === "as_of") {
      // Only a whole, real date is sent while typing; anything else waits for Enter or Apply.
      if (isDate(asOf.value) && asOf.value !== served) { form.submit(); }
      return;
    }
    // Sorting and announced changes change what the server returns; those submit the form.
    if (name === "sort" || name === "announced") { return; }
    apply();
  });
  form.addEventListener("change", function (event) {
    if (event.target.name === "sort" || event.target.name === "announced") { form.submit(); }
  });
})();
