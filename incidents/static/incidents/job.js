// A background job followed by polling: the report pages' "Prepare in the background" and the
// import pages. Each element with data-job="<GET /api/jobs/<id>/>" holds the markup of the
// incident page's job list (<li> with a <progress> and a .stage); this script asks the API once a
// second until the job ends, then shows the download link ([data-file]) or, with
// data-end="reload", reloads the page so the server renders the result as it always does.
// Polling rather than the incident's WebSocket: an import has no incident (so no channel), and
// with a separate worker and no Redis the worker's live progress never reaches the web process,
// while the job row (`progress`, `status`) is there for every configuration.
(function () {
  "use strict";
  const ENDED = new Set(["done", "failed"]);

  function size(bytes) {
    const units = ["bytes", "KB", "MB", "GB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
  }

  function stageText(job) {
    if (job.status === "failed") return "failed: " + (job.error || "");
    const result = job.result || {};
    if (job.status === "done") {
      if (result.size === undefined) return "done";
      const rows = Object.values(result.rows || {}).reduce(function (a, b) { return a + b; }, 0);
      return "ready: " + result.name + " · " + rows.toLocaleString() + " rows, " + size(result.size);
    }
    if (job.status === "queued") return "queued: waiting for a worker…";
    const progress = job.progress || {};
    const stage = progress.stage || "running";
    if (progress.total) return stage + " (" + progress.done.toLocaleString() + "/" + progress.total.toLocaleString() + ")…";
    if (progress.done) return stage + ": " + progress.done.toLocaleString() + " rows…";
    return stage + "…";
  }

  function follow(box) {
    const row = box.querySelector("li") || box;
    const bar = row.querySelector("progress");
    const stage = row.querySelector(".stage");
    const file = row.querySelector("[data-file]");
    let wait = 1000;

    function show(job) {
      row.className = job.status;
      const progress = job.progress || {};
      if (ENDED.has(job.status)) bar.value = 1;
      else if (progress.total) bar.value = progress.done / progress.total;
      else bar.removeAttribute("value"); // how much is left is unknown: an indeterminate bar
      stage.textContent = stageText(job);
      if (file && job.status === "done" && job.result && job.result.download) {
        file.href = job.result.download;
        file.hidden = false;
      }
    }

    async function poll() {
      let job = null;
      try {
        const response = await fetch(box.dataset.job, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.status === 403 || response.status === 404) { stage.textContent = "no longer available to you"; return; }
        if (!response.ok) throw new Error("HTTP " + response.status);
        job = await response.json();
        wait = 1000;
      } catch (error) {
        wait = Math.min(wait * 2, 30000); // the server restarting, the network away: ask less often
        setTimeout(poll, wait);
        return;
      }
      show(job);
      if (!ENDED.has(job.status)) { setTimeout(poll, wait); return; }
      if (box.dataset.end === "reload") location.reload();
    }
    setTimeout(poll, wait);
  }

  for (const box of document.querySelectorAll("[data-job]")) follow(box);
})();
