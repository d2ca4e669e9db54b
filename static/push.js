/* The member's push page: subscribe this phone and send the subscription to Linli. A file,
   not an inline script, so the Content Security Policy can forbid inline scripts. */
(function () {
  var button = document.getElementById("enable");
  var result = document.getElementById("result");
  if (!button) { return; }
  function bytes(base64url) {
    var padded = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }
  button.addEventListener("click", function () {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
      result.textContent = "这个浏览器不支持推送，请继续使用短信。";
      return;
    }
    navigator.serviceWorker.register("/sw.js", {scope: "/m/"}).then(function (registration) {
      return registration.pushManager.subscribe({
        userVisibleOnly: true, applicationServerKey: bytes(button.dataset.key)});
    }).then(function (subscription) {
      return fetch(button.dataset.subscribe, {method: "POST", credentials: "omit",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify(subscription)});
    }).then(function (response) {
      result.textContent = response.ok ? "已开启。新的事项会推送到这部手机。" : "开启失败，请稍后再试。";
    }).catch(function () {
      result.textContent = "没有开启：请在浏览器设置里允许本站发送通知。";
    });
  });
})();
