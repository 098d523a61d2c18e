// The SLO and security posture panels of the Trellis dashboard
// (page.html loads this after its own script, whose helpers it uses).
"use strict";

const BADGES = {
  ok: "OK", slow_burn: "slow burn", fast_burn: "fast burn", exhausted: "budget spent",
  no_data: "no traffic", unknown_service: "unknown service",
};

function el(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props || {});
  node.append(...children.filter((c) => c != null));
  return node;
}

function fmtDuration(seconds) {
  if (seconds >= 86400 && seconds % 86400 === 0) return seconds / 86400 + "d";
  if (seconds >= 3600) return +(seconds / 3600).toFixed(1) + "h";
  if (seconds >= 60) return Math.round(seconds / 60) + "m";
  return Math.round(seconds) + "s";
}

// `workload/NS/NAME` as `NAME (NS)`; a request refused before routing, or
// from outside the mesh, names `unknown`.
function idText(id) {
  const [, namespace, name] = id.split("/");
  return name === "unknown" ? "unknown" : `${name} (${namespace})`;
}

function fmtShare(x, digits) { return x == null ? "–" : (x * 100).toFixed(digits) + "%"; }
function fmtBurn(b) { return b == null ? "–" : (b >= 10 ? b.toFixed(0) : b.toFixed(1)) + "×"; }

function table(id, headings, rows) {
  const head = el("tr", {}, ...headings.map((h) => el("th", { textContent: h })));
  return el("table", { id }, el("thead", {}, head), el("tbody", {}, ...rows));
}

function cells(tr, values) {
  tr.append(...values.map((v) => (v instanceof Node ? el("td", {}, v) : el("td", { textContent: v }))));
  return tr;
}

function objectiveText(s) {
  return s.objective === "latency"
    ? `${s.target}% under ${fmtMs(s.thresholdMs)}` + (s.estimated ? " (between buckets: estimated)" : "")
    : `${s.target}% not 5xx`;
}

function sloRow(s) {
  const tr = el("tr");
  Object.assign(tr.dataset, { slo: `${s.namespace}/${s.name}`, status: s.status, budget: s.budgetRemaining ?? "" });
  const badge = el("span", { className: "badge badge-" + s.status, textContent: BADGES[s.status] || s.status });
  const budget = s.budgetRemaining == null ? "–" : fmtShare(s.budgetRemaining, 1);
  const burn = (w) => el("span", { title: `over ${fmtDuration(w.seconds)}, ${w.requests} requests` }, fmtBurn(w.burnRate));
  return cells(tr, [
    `${s.name} (${s.namespace})`,
    s.serviceHost || s.service,
    objectiveText(s),
    `${fmtShare(s.sli, 2)} over ${fmtDuration(s.history.seconds)}`,
    budget,
    burn(s.short),
    burn(s.long),
    badge,
  ]);
}

function renderSlos(report) {
  const body = $("slos-body");
  if (report.slos.length === 0) {
    body.innerHTML = '<p class="empty">No ServiceLevelObjective resources in the config.</p>';
    return;
  }
  const windows = [...new Set(report.slos.map((s) => fmtDuration(s.windowSeconds)))].join(", ");
  const note = el("p", { className: "note", id: "slos-note" },
    `SLI and budget are over the history this dashboard keeps (at most ${fmtDuration(report.retentionSeconds)}, `
    + `--dashboard-retention), not the whole ${windows} window: budget left is what would remain if the window went as that history. `
    + `Fast burn: both windows above ${report.fastBurn}×; slow burn: above ${report.slowBurn}×.`);
  const rows = report.slos.map(sloRow);
  body.replaceChildren(table("slos-table", ["SLO", "service", "objective", "SLI", "budget left", "burn 5m", "burn 1h", "status"], rows), note);
}

function modeText(w) {
  const ports = w.ports.map((p) => `${p.port}: ${p.mode}`).join(", ");
  return w.mode + (ports ? ` (port ${ports})` : "");
}

function postureWorkloads(workloads) {
  const open = workloads.filter((w) => w.acceptsPlaintext !== "none");
  if (open.length === 0) return el("p", { className: "empty", textContent: "Every workload requires mTLS." });
  const rows = open.map((w) => {
    const tr = el("tr");
    Object.assign(tr.dataset, { id: w.id, mode: w.mode, plaintext: w.acceptsPlaintext });
    const partial = w.acceptsPlaintext === "some" ? "some ports" : "all ports";
    return cells(tr, [w.name, w.namespace, modeText(w), partial, String(w.proxies)]);
  });
  return table("posture-workloads", ["workload", "namespace", "PeerAuthentication mode", "plaintext on", "sidecars"], rows);
}

function postureEdges(edges) {
  if (edges.length === 0) return el("p", { className: "empty", textContent: "No plaintext requests in this window." });
  const rows = edges.map((e) => {
    const tr = el("tr");
    Object.assign(tr.dataset, { source: e.source, target: e.target });
    return cells(tr, [idText(e.source), idText(e.target), fmtRate(e.requestsPerSecond), e.security === "none" ? "all plaintext" : "partly plaintext"]);
  });
  return table("posture-edges", ["from", "to", "rps", "security"], rows);
}

function postureDenials(denials) {
  if (denials.length === 0) return el("p", { className: "empty", textContent: "No requests denied by policy in this window." });
  const rows = denials.map((d) => {
    const tr = el("tr");
    Object.assign(tr.dataset, { source: d.source, target: d.target, destination: d.destination, denied: d.rbac + d.extAuthz });
    const by = [d.rbac ? `AuthorizationPolicy (RBAC) ${d.rbac}` : null, d.extAuthz ? `external authorizer (UAEX) ${d.extAuthz}` : null];
    return cells(tr, [idText(d.source), idText(d.target), idText(d.destination), fmtRate(d.requestsPerSecond), by.filter(Boolean).join(", ")]);
  });
  return table("posture-denials", ["from", "to", "refused by", "denied/s", "denied by"], rows);
}

function renderPosture(posture) {
  const open = posture.workloads.filter((w) => w.acceptsPlaintext !== "none").length;
  const heading = (text) => el("h3", { textContent: text });
  $("posture-body").replaceChildren(
    heading(`Workloads accepting plaintext (${open} of ${posture.workloads.length} with a sidecar)`),
    postureWorkloads(posture.workloads),
    heading("Plaintext edges"),
    postureEdges(posture.plaintextEdges),
    heading("Denied by policy"),
    postureDenials(posture.denials),
  );
}

async function refreshPanels() {
  const load = async (path) => {
    const response = await fetch(path);
    if (!response.ok) throw new Error(await response.text());
    return response.json();
  };
  try {
    renderSlos(await load("api/slos"));
  } catch (err) {
    $("slos-body").textContent = "Could not load SLOs: " + err.message;
  }
  try {
    renderPosture(await load("api/posture?window=" + encodeURIComponent(windowParam())));
  } catch (err) {
    $("posture-body").textContent = "Could not load the posture: " + err.message;
  }
}

$("window").addEventListener("change", refreshPanels);
refreshPanels();
setInterval(refreshPanels, REFRESH_MS);
