// The incident page, live: one WebSocket, replay from the last event seen, no build step.
(function () {
  "use strict";
  const root = document.getElementById("live");
  if (!root) return;
  const ALERTS = new Set(["deployment.declined", "deployment.expired", "deployment.cancelled", "deployment.screening_failed"]);
  let since = Number(root.dataset.since || 0);
  let retry = 1000;
  let refreshTimer = null;
  const state = document.getElementById("live-state");

  function setState(text) { if (state) state.textContent = text; }

  function refreshFill() {
    // Several events in a burst: one refresh of the table, half a second later.
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(async function () {
      const response = await fetch(root.dataset.fill, { credentials: "same-origin" });
      if (!response.ok) return;
      const fragment = document.createElement("div");
      fragment.innerHTML = await response.text();
      const fresh = fragment.querySelector("#fill");
      const old = document.getElementById("fill");
      if (fresh && old) old.replaceWith(fresh);
    }, 500);
  }

  function addAlert(event) {
    const list = document.getElementById("alerts");
    const empty = document.getElementById("no-alerts");
    if (empty) empty.remove();
    const item = document.createElement("li");
    const data = event.data || {};
    const when = new Date(event.at).toLocaleString([], { timeZone: root.dataset.tz, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    const why = data.reason || (data.reasons || []).join("; ");
    item.className = "new " + event.type.replace(".", "");
    item.textContent = when + " " + event.type + " — " + (data.facility || "") + " " + (data.qualification || "") + (why ? ": " + why : "");
    list.prepend(item);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + root.dataset.socket + "?since=" + since);
    socket.onopen = function () { retry = 1000; setState("live"); };
    socket.onmessage = function (message) {
      const body = JSON.parse(message.data);
      if (body.reload) { location.reload(); return; }
      for (const event of body.events || []) {
        since = Math.max(since, event.id);
        if (ALERTS.has(event.type)) addAlert(event);
      }
      refreshFill();
    };
    socket.onclose = function (closing) {
      if (closing.code === 4401 || closing.code === 4403) { setState("not allowed"); return; }
      setState("reconnecting…");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
})();
