/* 邻里 Linli service worker: shows pushed cases and opens their links.
 * A push carries {title, body, url, tag, actions: [{action, title, url}]}; tapping the
 * notification opens the case, tapping an action opens that action's page (the member
 * confirms there: links never act on GET). */
self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {body: event.data.text()}; }
  var actions = (data.actions || []).slice(0, 2);
  var urls = {};
  actions.forEach(function (a) { urls[a.action] = a.url; });
  event.waitUntil(self.registration.showNotification(data.title || "邻里", {
    body: data.body || "",
    tag: data.tag,
    renotify: true,
    requireInteraction: true,
    data: {url: data.url, actions: urls},
    actions: actions.map(function (a) { return {action: a.action, title: a.title}; })
  }));
});

self.addEventListener("notificationclick", function (event) {
  var data = event.notification.data || {};
  var target = (event.action && data.actions && data.actions[event.action]) || data.url;
  event.notification.close();
  if (target) { event.waitUntil(clients.openWindow(target)); }
});
