// Drives headless Chromium against the Trellis dashboard and prints what a
// user sees as JSON on stdout: the graph's nodes and edges, the version
// split of one service after clicking it, the signals of an edge into it
// after clicking that, the SLO panel's rows and the security posture
// panel's tables. Used by crates/cli/tests/dashboard.rs.
//
// usage: node dashboard.mjs DASHBOARD_URL SERVICE_NODE_ID SCREENSHOT_PATH [SLO]
//        SLO (NAMESPACE/NAME): wait until the SLO panel shows its budget.
// env:   CHROMIUM (default /usr/bin/chromium), TIMEOUT_MS (default 60000)
import { chromium } from "playwright-core";

const [url, serviceId, screenshot, slo] = process.argv.slice(2);
if (!url || !serviceId || !screenshot) {
  console.error("usage: node dashboard.mjs DASHBOARD_URL SERVICE_NODE_ID SCREENSHOT_PATH");
  process.exit(2);
}
const timeout = Number(process.env.TIMEOUT_MS || 60000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
  timeout,
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  // The page's own errors explain a timeout better than the timeout does.
  page.on("pageerror", (error) => console.error("page error:", error.message));
  page.on("console", (message) => {
    if (message.type() === "error") console.error("page console:", message.text());
  });
  await page.goto(url, { timeout });
  // The page refreshes itself; wait until the service has been drawn.
  try {
    const node = page.locator(`g.node[data-id="${serviceId}"]`);
    await node.waitFor({ timeout });
    await node.click();
    await page.locator("#versions tbody tr").first().waitFor({ timeout });
    if (slo) {
      await page.locator(`#slos-table tr[data-slo="${slo}"]:not([data-budget=""])`).waitFor({ timeout });
    }
    await page.locator("#posture-workloads tbody tr").first().waitFor({ timeout });
  } catch (error) {
    await page.screenshot({ path: screenshot, fullPage: true });
    console.error("page status:", await page.locator("#status").textContent());
    console.error("graph:", (await page.locator("#graph-body").innerHTML()).slice(0, 2000));
    console.error("slos:", (await page.locator("#slos-body").innerHTML()).slice(0, 2000));
    console.error("posture:", (await page.locator("#posture-body").innerHTML()).slice(0, 2000));
    throw error;
  }
  const seen = await page.evaluate(() => ({
    nodes: [...document.querySelectorAll("g.node")].map((g) => ({
      id: g.dataset.id,
      label: g.getAttribute("aria-label"),
    })),
    edges: [...document.querySelectorAll("g.edge")].map((g) => ({
      source: g.dataset.source,
      target: g.dataset.target,
      security: g.dataset.security,
      text: [...g.querySelectorAll("text")].map((t) => t.textContent).join(" | "),
    })),
    details: document.getElementById("details-title").textContent,
    versions: [...document.querySelectorAll("#versions tbody tr")].map((tr) => ({
      version: tr.dataset.version,
      share: Number(tr.dataset.share),
    })),
    slos: [...document.querySelectorAll("#slos-table tbody tr")].map((tr) => ({
      slo: tr.dataset.slo,
      status: tr.dataset.status,
      budget: tr.dataset.budget,
      cells: [...tr.querySelectorAll("td")].map((td) => td.textContent),
    })),
    sloNote: document.getElementById("slos-note")?.textContent ?? "",
    plaintextWorkloads: [...document.querySelectorAll("#posture-workloads tbody tr")].map((tr) => ({
      id: tr.dataset.id,
      mode: tr.dataset.mode,
      text: tr.textContent,
    })),
    plaintextEdges: [...document.querySelectorAll("#posture-edges tbody tr")].map((tr) => ({
      source: tr.dataset.source,
      target: tr.dataset.target,
    })),
    denials: [...document.querySelectorAll("#posture-denials tbody tr")].map((tr) => ({
      source: tr.dataset.source,
      target: tr.dataset.target,
      destination: tr.dataset.destination,
      denied: Number(tr.dataset.denied),
    })),
    postureText: document.getElementById("posture-body").textContent,
  }));
  // Then an edge into the service: its signals, narrowed to that caller.
  const into = page.locator(`g.edge[data-target="${serviceId}"]`).first();
  await page.evaluate(() => {
    const shown = document.querySelector("#details-body .service-view");
    if (shown) shown.dataset.stale = "1";
  });
  await into.click();
  await page.locator("#details-body .service-view:not([data-stale])").waitFor({ timeout });
  seen.edgeDetails = await page.evaluate(() => ({
    title: document.getElementById("details-title").textContent,
    signals: [...document.querySelectorAll("#details-body .signal")].map((row) => row.textContent),
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
