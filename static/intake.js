/* Call intake: as the place is typed, ask the server for matches and offer them as choices.
   Without JavaScript the 查找 button submits the same search as a GET form. */
(function () {
  var input = document.getElementById("place-q");
  var list = document.getElementById("place-matches");
  if (!input || !list || !window.fetch) return;
  var url = input.getAttribute("data-places");
  var timer = null;
  function show(places) {
    list.innerHTML = "";
    places.forEach(function (place, i) {
      var item = document.createElement("li");
      var label = document.createElement("label");
      var radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "place";
      radio.value = place.id;
      radio.required = true;
      if (i === 0 && places.length === 1) radio.checked = true;
      label.appendChild(radio);
      label.appendChild(document.createTextNode(" " + place.label));
      item.appendChild(label);
      var duty = document.createElement("a");
      var category = document.getElementById("category");
      duty.href = "?place=" + place.id + "&category=" + encodeURIComponent(category ? category.value : "");
      duty.textContent = "查看在班";
      item.appendChild(document.createTextNode(" "));
      item.appendChild(duty);
      list.appendChild(item);
    });
    var status = document.getElementById("place-status");
    if (status) status.textContent = places.length ? "找到 " + places.length + " 处" : "没有找到这个地点";
  }
  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    var q = input.value.trim();
    if (!q) return;
    timer = window.setTimeout(function () {
      fetch(url + "?q=" + encodeURIComponent(q), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(show, function () {});
    }, 200);
  });
})();
