/* The member's push page: subscribe this phone, send the subscription to Linli, then the
   code Linli texted to the member's phone, which makes it count. A file, not an inline
   script, so the Content Security Policy can forbid inline scripts. */
(function () {
  var button = document.getElementById("enable");
  var form = document.getElementById("confirm");
  var result = document.getElementById("result");
  var subscription = null;
  if (!button) { return; }
  function bytes(base64url) {
    var padded = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }
  function post(url, body) {
    return fetch(url, {method: "POST", credentials: "omit",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (answer) {
          answer.status = response.status;
          return answer;
        });
      });
  }
  function show(answer) {
    if (answer.ok) {
      form.hidden = true;
      result.textContent = "已开启。新的事项会推送到这部手机。";
    } else if (answer.confirm) {
      form.hidden = false;
      result.textContent = answer.message || "请填写短信验证码。";
      document.getElementById("code").focus();
    } else {
      result.textContent = answer.error || "开启失败，请稍后再试。";
    }
  }
  button.addEventListener("click", function () {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
      result.textContent = "这个浏览器不支持推送，请继续使用短信。";
      return;
    }
    navigator.serviceWorker.register("/sw.js", {scope: "/m/"}).then(function (registration) {
      return registration.pushManager.subscribe({
        userVisibleOnly: true, applicationServerKey: bytes(button.dataset.key)});
    }).then(function (subscribed) {
      subscription = subscribed.toJSON();
      return post(button.dataset.subscribe, subscription);
    }).then(show).catch(function () {
      result.textContent = "没有开启：请在浏览器设置里允许本站发送通知。";
    });
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!subscription) { return; }
    post(button.dataset.confirm, {endpoint: subscription.endpoint,
                                  code: document.getElementById("code").value})
      .then(show).catch(function () { result.textContent = "网络错误，请稍后再试。"; });
  });
})();
