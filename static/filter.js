/* A list filter: typing in an <input data-filter="ID"> hides the options of the <select id=ID>
   that do not contain the text. Without JavaScript the input's own form asks the server. */
(function () {
  var inputs = document.querySelectorAll("input[data-filter]");
  Array.prototype.forEach.call(inputs, function (input) {
    var select = document.getElementById(input.getAttribute("data-filter"));
    if (!select) return;
    input.addEventListener("input", function () {
      var wanted = input.value.trim().toLowerCase();
      Array.prototype.forEach.call(select.options, function (option) {
        option.hidden = wanted !== "" && option.text.toLowerCase().indexOf(wanted) < 0;
      });
    });
  });
})();
