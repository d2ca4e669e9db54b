/* Status page: fetch news every few seconds and update the timeline in place. The page is
   reloaded only when the case reaches or leaves "resolved", so the 回访 form can appear.
   Without JavaScript the page still works: the "refresh" link reloads it. */
(function () {
  var box = document.getElementById("live");
  if (!box || !window.fetch || !window.JSON) return;
  var url = box.getAttribute("data-live");
  var status = box.getAttribute("data-status");
  var every = 1000 * (parseFloat(box.getAttribute("data-poll")) || 15);
  var shown = null;
  var leaving = false;  // a form is being sent: its answer is the next page, not a reload
  document.addEventListener("submit", function () { leaving = true; }, true);
  function settled(s) { return s === "resolved" || s === "closed"; }
  function apply(news) {
    if (!news || leaving) return;
    if (news.status !== status && (settled(news.status) || settled(status))) {
      window.location.reload();
      return;
    }
    status = news.status;
    document.getElementById("status-text").textContent = news.status_text;
    if (news.timeline !== shown) {
      shown = news.timeline;
      document.getElementById("timeline").innerHTML = news.timeline;
    }
  }
  function tick() {
    fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(apply, function () {})
      .then(function () { window.setTimeout(tick, every); });
  }
  window.setTimeout(tick, every);
})();
