// The redaction page's two behaviours, both optional: the page works without them (times are typed, and a
// "Refresh to see progress" link stands in for the polling).
//
// 1. The waveform: drawn by wavesurfer.js (served from our own origin) from the peaks the server computed
//    once, on the page's own <audio> player, so the page never fetches the whole recording to draw it. The
//    parts already marked are shaded; dragging across the waveform fills in the Start and End fields of
//    "Mark a part to withhold" and moves on to its Reason.
// 2. The redacted copy's progress: while it is being produced, its status is read every 2 seconds and
//    written to a live region; the page reloads when it is finished (ready, refused or failed).
import WaveSurfer from "/static/vendor/wavesurfer/wavesurfer.esm.js";
import RegionsPlugin from "/static/vendor/wavesurfer/regions.esm.js";

const POLL_MS = 2000;
const MARKED = "rgba(212, 53, 28, 0.25)"; // the parts already marked (NHS red, light)
const DRAFT = "rgba(0, 94, 184, 0.25)"; // the part being dragged (NHS blue, light)

// Milliseconds as staff type them: "mm:ss.s", or "h:mm:ss.s" from an hour (as core.models.redaction).
export function formatTimestamp(ms) {
  const tenths = Math.round(ms / 100);
  const hours = Math.floor(tenths / 36000);
  const minutes = Math.floor((tenths % 36000) / 600);
  const seconds = Math.floor((tenths % 600) / 10);
  const tenth = tenths % 10;
  const mmss = `${String(minutes).padStart(2, "0")}:${String(seconds).padStart(2, "0")}.${tenth}`;
  return hours ? `${hours}:${mmss}` : mmss;
}

function fillFields(doc, region) {
  const start = doc.getElementById("range-start");
  const end = doc.getElementById("range-end");
  if (!start || !end) {
    return;
  }
  start.value = formatTimestamp(region.start * 1000);
  end.value = formatTimestamp(region.end * 1000);
  const reason = doc.querySelector("input[name=reason]:checked") || doc.querySelector("input[name=reason]");
  if (reason) {
    reason.focus();
  }
}

async function drawWaveform(doc) {
  const container = doc.getElementById("waveform");
  const player = container && doc.getElementById(container.dataset.player);
  if (!container || !player || !container.dataset.peaksUrl) {
    return;
  }
  const response = await fetch(container.dataset.peaksUrl, { credentials: "same-origin" });
  if (!response.ok) {
    return; // the plain player stays
  }
  const waveform = await response.json();
  const regions = RegionsPlugin.create();
  const nonce = doc.getElementById("redaction-script")?.nonce || "";
  const surfer = WaveSurfer.create({
    container,
    media: player,
    peaks: [waveform.peaks.map((value) => value / 100)],
    duration: waveform.duration,
    height: 96,
    waveColor: "#768692",
    progressColor: "#005eb8",
    cursorColor: "#212b32",
    normalize: false,
    cspNonce: nonce,
    plugins: [regions],
  });
  surfer.on("ready", () => {
    for (const [start, end] of JSON.parse(container.dataset.ranges || "[]")) {
      regions.addRegion({ start: start / 1000, end: end / 1000, color: MARKED, drag: false, resize: false });
    }
    container.dataset.ready = "yes";
  });
  if (container.dataset.editable !== "yes") {
    return;
  }
  let draft = null;
  regions.enableDragSelection({ color: DRAFT });
  regions.on("region-created", (region) => {
    if (region.drag === false) {
      return; // a part already marked, added above
    }
    if (draft && draft !== region) {
      draft.remove();
    }
    draft = region;
    fillFields(doc, region);
  });
  regions.on("region-updated", (region) => {
    if (region === draft) {
      fillFields(doc, region);
    }
  });
}

function followProgress(doc) {
  const state = doc.getElementById("copy-state");
  const progress = doc.getElementById("copy-progress");
  if (!state || !progress || !state.dataset.statusUrl) {
    return;
  }
  const refresh = doc.getElementById("copy-refresh");
  if (refresh) {
    refresh.hidden = true; // this script refreshes it instead
  }
  const poll = async () => {
    try {
      const response = await fetch(state.dataset.statusUrl, { credentials: "same-origin" });
      const status = await response.json();
      if (status.status === "queued" || status.status === "working") {
        progress.textContent = `The redacted copy is being produced: ${status.progress}% done.`;
        setTimeout(poll, POLL_MS);
        return;
      }
      progress.textContent = status.ready ? "The redacted copy is ready." : "The redacted copy was not made.";
      doc.defaultView.location.reload();
    } catch {
      if (refresh) {
        refresh.hidden = false;
      }
    }
  };
  setTimeout(poll, POLL_MS);
}

followProgress(document);
drawWaveform(document);
