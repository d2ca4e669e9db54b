/* The case board: fetch its table every few seconds and swap it in place (no page reload).
   A worker who opts in hears a beep and sees a desktop notification when a new urgent case
   appears. Without JavaScript the page still works: the 刷新 link reloads it. */
(function () {
  var board = document.getElementById("board");
  if (!board || !window.fetch) return;
  var url = board.getAttribute("data-live");
  var every = 1000 * (parseFloat(board.getAttribute("data-poll")) || 15);
  var button = document.getElementById("board-alerts");
  var KEY = "linli.board.alerts";
  function urgentIds() {
    var live = document.getElementById("board-live");
    var ids = (live && live.getAttribute("data-urgent")) || "";
    return ids ? ids.split(",") : [];
  }
  var seen = {};
  urgentIds().forEach(function (id) { seen[id] = true; });
  function enabled() {
    try { return window.localStorage.getItem(KEY) === "on"; } catch (e) { return false; }
  }
  function label() {
    if (!button) return;
    button.hidden = false;
    button.textContent = enabled() ? "关闭新紧急案件提醒" : "开启新紧急案件提醒（声音与桌面通知）";
    button.setAttribute("aria-pressed", enabled() ? "true" : "false");
  }
  function beep() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    var audio = new Context();
    var tone = audio.createOscillator();
    var gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.value = 0.2;
    tone.connect(gain);
    gain.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.4);
  }
  function announce(count) {
    document.title = "（" + count + " 件新紧急）案件看板 · 邻里";
    if (!enabled()) return;
    beep();
    if (window.Notification && Notification.permission === "granted") {
      new Notification("邻里：新的紧急案件", {body: "有 " + count + " 件新的紧急案件，请查看看板。"});
    }
  }
  if (button) {
    label();
    button.addEventListener("click", function () {
      var on = !enabled();
      try { window.localStorage.setItem(KEY, on ? "on" : "off"); } catch (e) { /* private mode */ }
      if (on && window.Notification && Notification.permission === "default") {
        Notification.requestPermission();
      }
      label();
    });
  }
  function apply(html) {
    if (html === null) return;
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var fresh = holder.querySelector("#board-live");
    var old = document.getElementById("board-live");
    if (!fresh || !old) return;
    old.parentNode.replaceChild(fresh, old);
    var added = urgentIds().filter(function (id) { return !seen[id]; });
    added.forEach(function (id) { seen[id] = true; });
    if (added.length) announce(added.length);
  }
  function tick() {
    fetch(url, {credentials: "same-origin", headers: {Accept: "text/html"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(apply, function () {})
      .then(function () { window.setTimeout(tick, every); });
  }
  window.setTimeout(tick, every);
})();
