// The incident page, live: one WebSocket, replay from the last event seen, no build step.
(function () {
  "use strict";
  const root = document.getElementById("live");
  if (!root) return;
  const ALERTS = new Set(["deployment.declined", "deployment.expired", "deployment.cancelled", "deployment.screening_failed"]);
  let since = Number(root.dataset.since || 0);
  let retry = 1000;
  let opened = 0;
  let refreshTimer = null;
  const state = document.getElementById("live-state");

  function setState(text) { if (state) state.textContent = text; }

  let pendingSince = 0;
  async function fetchFill() {
    pendingSince = 0;
    const response = await fetch(root.dataset.fill, { credentials: "same-origin" });
    if (!response.ok) return;
    const fragment = document.createElement("div");
    fragment.innerHTML = await response.text();
    const fresh = fragment.querySelector("#fill");
    const old = document.getElementById("fill");
    if (fresh && old) old.replaceWith(fresh);
    document.dispatchEvent(new CustomEvent("fill-updated"));
    const send = document.getElementById("send-offers");
    if (send && fresh) send.disabled = fresh.dataset.proposed === "0";
  }

  function refreshFill() {
    // A burst of events: one refresh, half a second after the last; under a steady stream,
    // at least one every two seconds.
    clearTimeout(refreshTimer);
    const now = Date.now();
    if (!pendingSince) pendingSince = now;
    // Jitter: every open dashboard hears the same event at once; they need not all ask at once.
    const wait = Math.max(0, Math.min(500, pendingSince + 2000 - now)) + Math.random() * 250;
    refreshTimer = setTimeout(fetchFill, wait);
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

  function jobRow(id, kind) {
    let row = document.getElementById("job-" + id);
    if (row) return row;
    const list = document.getElementById("jobs");
    if (!list) return null;
    row = document.createElement("li");
    row.id = "job-" + id;
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = kind.charAt(0).toUpperCase() + kind.slice(1) + " #" + id;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    const stage = document.createElement("span");
    stage.className = "stage";
    row.append(what, bar, stage);
    list.prepend(row);
    return row;
  }

  function showJob(job) {
    // {"job": {id, kind, status, stage, done, total}}: progress while it runs (not replayed).
    const row = jobRow(job.id, job.kind);
    if (!row) return;
    row.className = "running";
    row.querySelector("progress").value = job.total ? job.done / job.total : 0;
    row.querySelector(".stage").textContent = job.stage + (job.total ? " (" + job.done + "/" + job.total + ")" : "") + "…";
  }

  function endJob(event) {
    const data = event.data || {};
    const row = jobRow(data.job, data.kind || "job");
    if (!row) return;
    const finished = event.type === "job.finished";
    row.className = finished ? "done" : "failed";
    row.querySelector("progress").value = 1;
    const summary = data.summary || {};
    row.querySelector(".stage").textContent = finished
      ? "done" + (summary.proposed !== undefined ? ": " + summary.proposed + " proposed, " + (summary.unfilled || 0) + " request(s) not filled" : "")
      : "failed: " + (data.error || "");
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + root.dataset.socket + "?since=" + since);
    socket.onopen = function () { opened = Date.now(); setState("live"); };
    socket.onmessage = function (message) {
      const body = JSON.parse(message.data);
      if (body.reload) { location.reload(); return; }
      if (body.job) { showJob(body.job); return; }
      for (const event of body.events || []) {
        since = Math.max(since, event.id);
        if (ALERTS.has(event.type)) addAlert(event);
        if (event.type === "job.finished" || event.type === "job.failed") endJob(event);
      }
      refreshFill();
    };
    socket.onclose = function (closing) {
      if (closing.code === 4401 || closing.code === 4403) { setState("not allowed"); return; }
      setState("reconnecting…");
      // Back off afresh only after a connection that lasted: one closed at once (4503, the
      // server's Redis is down) keeps doubling the wait. Jitter, because a server that loses
      // Redis closes all its clients in the same instant.
      if (opened && Date.now() - opened > 10000) retry = 1000;
      opened = 0;
      setTimeout(connect, retry * (0.5 + Math.random()));
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
  // The watch list (offers about to lapse) moves with the clock, not only with events.
  setInterval(refreshFill, 60000);
})();
