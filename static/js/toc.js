// On a small screen the contents start folded, so that the document itself is near the top.
(function () {
  "use strict";
  var fold = document.querySelector(".toc-fold");
  if (fold && window.matchMedia("(max-width: 48rem)").matches) { fold.open = false; }
})();
