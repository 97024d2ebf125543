// psrunner portal: live progress of runs through server-sent events (no other script).
// A report still under way carries data-live="RUN_ID"; its stage rows are updated as the
// run's events arrive, and the page is loaded again when the run ends, to show the result.
"use strict";

function liveReport(section) {
  const runId = section.dataset.live;
  const source = new EventSource("/runs/" + encodeURIComponent(runId) + "/events");
  const row = (stage) => section.querySelector('tr[data-stage="' + CSS.escape(stage) + '"]');

  source.addEventListener("stage.start", (e) => {
    const d = JSON.parse(e.data);
    const tr = row(d.stage);
    if (tr) {
      tr.className = "st-running";
      tr.querySelector(".status").textContent = "running…";
    }
  });
  source.addEventListener("stage.end", (e) => {
    const d = JSON.parse(e.data);
    const tr = row(d.stage);
    if (tr) {
      tr.className = "st-" + d.status;
      tr.querySelector(".status").textContent = d.label;
      const said = tr.querySelector(".said");
      said.textContent = "";
      if (d.message) {
        const p = document.createElement("p");
        p.textContent = d.message;
        said.appendChild(p);
      }
    }
  });
  source.addEventListener("run.end", () => {
    source.close();
    window.setTimeout(() => window.location.reload(), 250);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(liveReport);
});
