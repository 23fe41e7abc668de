// End-to-end: the embedded UI in headless Chromium against a real
// `loupe serve`, seeded through the public HTTP API.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createServer } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { client, launch, rng, screenshotDir, startServer, waitSummaries } from "./lib.mjs";

const P = "e2e";
const SPIKE_STEP = 654_321;
const BIG_N = 1_000_000;

let server;
let api;
let browser;
let page;
let shots;
let hooks;
let rulesDir;
/** Bodies the test's webhook receiver got, by path. */
const received = { "/ok": [], "/broken": [] };

/**
 * Alerting for the alerts tests: a threshold rule on `train/loss`, and two
 * webhook channels on a receiver in this process: `/ok` answers 200,
 * `/broken` answers 400, which the server gives up at once (a failure the
 * UI must show). The seeded e2e data is from 2023, too old for threshold
 * rules (they skip series silent for 10 minutes), so nothing fires until
 * the alerts tests send fresh points.
 */
async function alertingSetup() {
  hooks = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received[req.url]?.push(body);
      res.writeHead(req.url === "/ok" ? 200 : 400, { "content-type": "text/plain" });
      res.end(req.url === "/ok" ? "ok" : "bad request: this receiver always refuses");
    });
  });
  await new Promise((r) => hooks.listen(0, "127.0.0.1", r));
  const port = hooks.address().port;
  rulesDir = mkdtempSync(join(tmpdir(), "loupe-ui-rules-"));
  const file = join(rulesDir, "alerts.toml");
  writeFileSync(
    file,
    `[settings]
evaluation_interval = "1s"
group_by = ["run"]

[[channels]]
name = "hook-ok"
type = "webhook"
url = "http://127.0.0.1:${port}/ok"

[[channels]]
name = "hook-broken"
type = "webhook"
url = "http://127.0.0.1:${port}/broken"

[[rules]]
name = "loss-high"
kind = "threshold"
expr = "train/loss > 5"
severity = "critical"
`,
  );
  return file;
}

async function seed() {
  const rand = rng(7);
  await api.createRun({
    id: "big",
    project: P,
    name: "big-1m",
    tags: ["baseline", "long"],
    config: { lr: 3e-4, batch: 64, optimizer: { name: "adam", beta1: 0.9 }, model: { layers: 24, d_model: 1024 } },
    host: "node-7",
    command: "python train.py --lr 3e-4",
    git_commit: "0123456789abcdef0123",
  });
  // A smooth, noisy decay with one spike at a single step.
  await api.series("big", "train/loss", BIG_N, (i) => (i === SPIKE_STEP ? 1000 : 4 * Math.exp(-i / 200_000) + 0.5 + 0.05 * rand()));
  await api.series("big", "train/nan", 1000, (i) => (i === 100 || i === 500 ? NaN : i === 700 ? Infinity : Math.sin(i / 50)));
  const lines = [];
  for (let i = 0; i < 300; i++) {
    lines.push({ time: 1_700_000_000 + i, stream: i % 7 === 0 ? "stderr" : "stdout", level: i % 50 === 0 ? "warning" : "info", text: `step ${i * 1000} loss ${(4 * Math.exp(-i / 60)).toFixed(4)}` });
  }
  lines.push({ time: 1_700_000_150.5, stream: "stdout", level: "info", text: "checkpoint saved to /ckpt/epoch-3 zebracorn" });
  lines.push({ time: 1_700_000_151, stream: "stderr", level: "error", text: "CUDA error: an illegal memory access was encountered" });
  await api.logs("big", lines);

  await api.createRun({ id: "wide", project: P, name: "wide-50", tags: ["wide"], config: { lr: 1e-3, batch: 32 }, host: "node-2" });
  const names = [
    ...Array.from({ length: 30 }, (_, i) => `train/m${String(i).padStart(2, "0")}`),
    ...Array.from({ length: 10 }, (_, i) => `eval/e${i}`),
    ...Array.from({ length: 5 }, (_, i) => `sys/s${i}`),
    ...Array.from({ length: 5 }, (_, i) => `gpu/0/g${i}`),
  ];
  await api.many("wide", names, 500, (k, i) => Math.cos(i / (10 + k)) + k);

  await api.createRun({ id: "cmp-a", project: P, name: "cmp-a", tags: ["sweep"], config: { lr: 1e-3, batch: 32, optimizer: { name: "adam" }, seed: 1 } });
  await api.createRun({ id: "cmp-b", project: P, name: "cmp-b", tags: ["sweep"], config: { lr: 3e-3, batch: 64, optimizer: { name: "adam" }, seed: 1 } });
  await api.many("cmp-a", ["train/loss", "eval/acc"], 2000, (k, i) => (k ? 1 - Math.exp(-i / 400) : 3 * Math.exp(-i / 500) + 0.2));
  await api.many("cmp-b", ["train/loss", "eval/acc"], 2000, (k, i) => (k ? 0.9 - 0.9 * Math.exp(-i / 300) : 3 * Math.exp(-i / 300) + 0.4));

  for (let i = 0; i < 20; i++) {
    const id = `sweep-${String(i).padStart(2, "0")}`;
    await api.createRun({ id, project: P, name: `sweep ${String.fromCharCode(97 + ((i * 7) % 20))}${i}`, tags: ["sweep"], config: { lr: 10 ** -(2 + (i % 4)), batch: 16 * (1 + (i % 3)) } });
    await api.many(id, ["train/loss"], 50, (_k, s) => 3 - i * 0.1 - s * 0.001);
  }
  await api.patch("/api/v1/runs/sweep-03", { status: "finished", end_time: 1_900_000_000 });
  await waitSummaries(api, P, "train/loss", 23);

  // A two-rank job in its own project.
  for (const rank of [0, 1]) {
    await api.createRun({ id: `job-r${rank}`, project: "dist", name: `job rank ${rank}`, group: "job-1", rank, world_size: 2, host: `gpu-node-${rank}` });
    await api.many(`job-r${rank}`, ["sys/cpu", "gpu/0/util", "gpu/1/util"], 100, (k, i) => 50 + 10 * Math.sin(i / 10 + k + rank));
  }
}

const J = "jobs";
const JOB = "llm-8";
const T0 = 1_700_000_000;

/**
 * An 8-rank job that died the way the demo's does: rank 5 ran out of GPU
 * memory at step 518, the launcher stopped the other 7 (failed, no failure
 * of their own); a single run beside it; series with units.
 */
async function seedJob() {
  for (let rank = 0; rank < 8; rank++) {
    const id = `${JOB}.r${rank}`;
    await api.createRun({ id, project: J, name: id, group: JOB, rank, world_size: 8, host: `gpu-node-${rank >> 2}`, start_time: T0, tags: ["pretrain"] });
    const names = ["train/loss", "gpu/0/memory_used_bytes", "perf/tokens_per_s", "gpu/0/temperature", "perf/step_time"];
    await api.many(id, names, 519, (k, i) => [4 * Math.exp(-i / 200) + 0.5, 6.008e10 + i * 1e7 * (rank === 5 ? 10 : 1), 48035.3663 - i, 60 + rank + i / 100, 3.4224626523975448][k], { t0: T0, dt: 1 });
  }
  for (let rank = 0; rank < 8; rank++) {
    const failure = rank === 5 ? { exception_type: "torch.OutOfMemoryError", message: "CUDA out of memory. Tried to allocate 2.00 GiB", stderr_tail: ["torch.OutOfMemoryError: CUDA out of memory"] } : null;
    await api.patch(`/api/v1/runs/${JOB}.r${rank}`, { status: "failed", exit_code: 1, end_time: T0 + 520 + (rank === 5 ? 0 : 5), failure });
  }
  await api.createRun({ id: "solo", project: J, name: "solo-run", start_time: T0 });
  await api.many("solo", ["train/loss"], 10, (_k, i) => 1 / (i + 1), { t0: T0 });
  await waitSummaries(api, J, "train/loss", 9);
}

/** The probes of charts drawn so far. */
const probes = () => page.evaluate(() => Object.values(window.__loupe.charts).map((c) => ({ ...c, lines: c.lines.map((l) => ({ ...l, x: undefined, y: undefined })) })));

async function waitCharts(n) {
  await page.waitForFunction((n) => Object.values(window.__loupe.charts).filter((c) => c.drawnAt > 0).length >= n, n, { timeout: 20_000 });
}

before(async () => {
  server = await startServer({ args: ["--rules", await alertingSetup()] });
  api = client(server.base);
  await seed();
  await seedJob();
  browser = await launch();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("pageerror", (e) => console.error("page error:", e));
  shots = screenshotDir();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  hooks?.close();
  if (rulesDir) rmSync(rulesDir, { recursive: true, force: true });
});

describe("server", () => {
  test("serves the UI, assets with cache headers, SPA fallback, and JSON 404s under /api", async () => {
    const index = await fetch(`${server.base}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get("content-type"), /text\/html/);
    assert.equal(index.headers.get("cache-control"), "no-cache");
    const html = await index.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, "index.html names a hashed script");
    const js = await fetch(server.base + asset);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type"), /javascript/);
    assert.match(js.headers.get("cache-control"), /immutable/);
    const deep = await fetch(`${server.base}/r/some-run?tab=logs`);
    assert.equal(deep.status, 200);
    assert.match(await deep.text(), /<div id="app">/);
    const api404 = await fetch(`${server.base}/api/v1/nope`);
    assert.equal(api404.status, 404);
    assert.equal((await api404.json()).error.code, "not_found");
    const missingAsset = await fetch(`${server.base}/assets/missing-123.js`);
    assert.equal(missingAsset.status, 404);
  });
});

describe("ui", () => {
  test("projects page lists the project", async () => {
    await page.goto(`${server.base}/`);
    await page.waitForSelector('[data-project="e2e"]');
    const text = await page.textContent('[data-project="e2e"]');
    assert.match(text, /24\s*runs/);
    await page.screenshot({ path: join(shots, "01-projects.png") });
  });

  test("runs table lists, filters and sorts", async () => {
    await page.goto(`${server.base}/p/${P}`);
    await page.waitForSelector('.runs-table[data-loaded="1"] .vt-row');
    const names = () => page.$$eval(".vt-row", (rows) => rows.sort((a, b) => a.dataset.index - b.dataset.index).map((r) => r.querySelector("a.run-link")?.textContent));
    assert.equal((await names()).length, 24);
    await page.screenshot({ path: join(shots, "02-runs.png") });
    await page.click('.vt-hcell[data-col="name"]');
    const asc = await names();
    assert.deepEqual(asc, [...asc].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
    assert.match(page.url(), /sort=name/);
    await page.click('.vt-hcell[data-col="name"]');
    const desc = await names();
    assert.deepEqual(desc, [...asc].reverse());
    // Sorting by a summary metric: lowest last loss first.
    await page.click('.vt-hcell[data-col="summary.train/loss.last"]');
    const first = await page.$eval('.vt-row[data-index="0"] a.run-link', (a) => a.textContent);
    const runs = (await api.get(`/api/v1/runs?project=${P}&limit=100`)).runs.filter((r) => r.summary["train/loss"]);
    runs.sort((a, b) => a.summary["train/loss"].last - b.summary["train/loss"].last);
    assert.equal(first, runs[0].name);
    // An expression filter, applied in the browser.
    await page.fill("input.filter", "config.lr > 2e-3");
    await page.waitForFunction(() => /^6 of 24 runs$/.test(document.querySelector(".count").textContent)).catch(async (e) => {
      throw new Error(`${e.message}: ${await page.textContent(".count")}`);
    });
    const filtered = await names();
    assert.ok(filtered.includes("cmp-b"));
    await page.fill("input.filter", "loss > 0.45 and loss < 1");
    await page.waitForFunction(() => /^1 of 24 runs$/.test(document.querySelector(".count").textContent));
    assert.deepEqual(await names(), ["big-1m"]);
    await page.fill("input.filter", "");
    await page.waitForFunction(() => /^24 runs$/.test(document.querySelector(".count").textContent));
    // j/k and x select; c compares.
    await page.keyboard.press("Escape");
    await page.keyboard.press("j");
    await page.keyboard.press("x");
    await page.keyboard.press("j");
    await page.keyboard.press("x");
    assert.equal(await page.$$eval(".vt-row.selected", (r) => r.length), 2);
    await page.screenshot({ path: join(shots, "03-runs-selected.png") });
    await page.keyboard.press("c");
    await page.waitForURL(/\/compare\?runs=/);
  });

  test("a run page draws every chart with the expected number of points", async () => {
    await page.setViewportSize({ width: 1400, height: 6000 });
    await page.goto(`${server.base}/r/wide`);
    await waitCharts(50);
    const ps = await probes();
    assert.equal(ps.length, 50);
    for (const p of ps) assert.equal(p.lines[0].points, 500, `${p.title} draws all 500 points`);
    const groups = await page.$$eval("details.group", (g) => g.map((x) => x.dataset.group));
    assert.deepEqual(groups, ["train", "eval", "sys", "gpu"]);
    await page.setViewportSize({ width: 1400, height: 900 });
    await page.screenshot({ path: join(shots, "04-run-50-charts.png") });
  });

  test("the single-step spike of a 1M-point series is drawn; zoom re-queries at full resolution", async () => {
    await page.goto(`${server.base}/r/big`);
    await waitCharts(2);
    const loss = await page.evaluate(() => {
      const c = Object.values(window.__loupe.charts).find((c) => c.title === "train/loss");
      const l = c.lines[0];
      const i = l.y.indexOf(1000);
      return { width: c.width, points: l.points, downsampled: l.downsampled, spikeX: i >= 0 ? l.x[i] : null };
    });
    assert.ok(loss.downsampled);
    assert.ok(loss.points <= 4 * loss.width && loss.points > loss.width, `M4 points ${loss.points} for width ${loss.width}`);
    assert.equal(loss.spikeX, SPIKE_STEP);
    await page.screenshot({ path: join(shots, "05-run-big.png") });

    // Drag across the middle of the loss chart.
    const before = await page.evaluate(() => window.__loupe.requests.length);
    const over = await page.$('[data-chart="big:train/loss"] .u-over');
    const box = await over.boundingBox();
    await page.mouse.move(box.x + box.width * 0.62, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.66, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction(() => Object.values(window.__loupe.charts).find((c) => c.title === "train/loss").zoom !== null && Object.values(window.__loupe.charts).find((c) => c.title === "train/loss").drawnAt > 0);
    const reqs = await page.evaluate((n) => window.__loupe.requests.slice(n).map((r) => r.url), before);
    const zoomReq = reqs.find((u) => u.includes("name=train%2Floss") && u.includes("from=") && u.includes("to="));
    assert.ok(zoomReq, `a zoom request was made: ${reqs.join(" ")}`);
    const z = await page.evaluate(() => {
      const c = Object.values(window.__loupe.charts).find((c) => c.title === "train/loss");
      return { zoom: c.zoom, xs: [c.lines[0].x[0], c.lines[0].x.at(-1)], points: c.lines[0].points };
    });
    assert.ok(z.zoom[1] - z.zoom[0] < 60_000, `zoomed range ${z.zoom}`);
    assert.ok(z.xs[0] >= z.zoom[0] - 1 && z.xs[1] <= z.zoom[1] + 1);
    await page.screenshot({ path: join(shots, "06-run-big-zoomed.png") });
    // The zoom is in the URL: opening it again shows the same range.
    assert.match(page.url(), /z=train%2Floss%3A\d/);
    await page.goto(page.url());
    await page.waitForFunction(() => window.__loupe.charts["big:train/loss"]?.drawnAt > 0);
    assert.deepEqual(await page.evaluate(() => window.__loupe.charts["big:train/loss"].zoom.map(Math.round)), z.zoom.map(Math.round));
    // Double-click resets the zoom.
    await page.dblclick('[data-chart="big:train/loss"] .u-over');
    await page.waitForFunction(() => Object.values(window.__loupe.charts).find((c) => c.title === "train/loss").zoom === null);
  });

  test("NaN and Inf are drawn as markers", async () => {
    const nan = await page.evaluate(() => Object.values(window.__loupe.charts).find((c) => c.title === "train/nan"));
    assert.equal(nan.nonFinite, 3);
    const el = await page.$('[data-chart="big:train/nan"]');
    await el.screenshot({ path: join(shots, "07-nan-markers.png") });
    // The marker colour is on the canvas.
    const red = await page.$eval('[data-chart="big:train/nan"] canvas', (c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 100 && d[i + 2] < 100) n++;
      return n;
    });
    assert.ok(red > 10, `red marker pixels: ${red}`);
  });

  test("clicking a chart point opens the logs at that time", async () => {
    const over = await page.$('[data-chart="big:train/nan"] .u-over');
    const box = await over.boundingBox();
    await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.5);
    await page.waitForURL(/tab=logs/);
    assert.match(page.url(), /t=\d/);
    await page.waitForSelector(".log-line");
  });

  test("log search finds a seeded line", async () => {
    await page.goto(`${server.base}/r/big?tab=logs`);
    await page.waitForSelector(".log-line");
    await page.fill('input[aria-label="search logs"]', "zebracorn");
    await page.waitForFunction(() => document.querySelectorAll(".log-line").length === 1);
    const text = await page.textContent(".log-line .log-text");
    assert.match(text, /checkpoint saved to \/ckpt\/epoch-3 zebracorn/);
    assert.match(page.url(), /q=zebracorn/);
    await page.fill('input[aria-label="search logs"]', "");
    await page.selectOption('select[aria-label="minimum level"]', "error");
    await page.waitForFunction(() => document.querySelectorAll(".log-line").length === 1);
    assert.match(await page.textContent(".log-line .log-text"), /CUDA error/);
    await page.screenshot({ path: join(shots, "08-logs.png") });
  });

  test("config and diagnosis tabs", async () => {
    await page.goto(`${server.base}/r/big?tab=config`);
    await page.waitForSelector(".jt");
    assert.match(await page.textContent(".config"), /d_model/);
    await page.screenshot({ path: join(shots, "09-config.png") });
    await page.click('[data-tab="diagnosis"]');
    await page.waitForSelector(".diagnosis");
    // Until the diagnosis endpoints exist, an empty state, not an error.
    const t = await page.textContent(".diagnosis");
    assert.ok(/not available|No incidents|health/i.test(t), t);
    await page.screenshot({ path: join(shots, "10-diagnosis.png") });
  });

  test("system tab groups a run's sys/ and gpu/ series by device", async () => {
    await page.goto(`${server.base}/r/wide?tab=system`);
    await waitCharts(10);
    const groups = await page.$$eval(".system details.group", (g) => g.map((x) => x.dataset.group));
    assert.deepEqual(groups, ["host", "GPU 0"]);
    await page.screenshot({ path: join(shots, "10b-system.png") });
  });

  test("a distributed run's system tab links the other ranks", async () => {
    await page.goto(`${server.base}/r/job-r1?tab=system`);
    await waitCharts(3);
    const groups = await page.$$eval(".system details.group", (g) => g.map((x) => x.dataset.group));
    assert.deepEqual(groups, ["host", "GPU 0", "GPU 1"]);
    assert.equal(await page.textContent(".ranks b"), "rank 1");
    await page.click('.ranks a:has-text("rank 0")');
    await page.waitForURL(/\/r\/job-r0\?tab=system/);
  });

  test("a failed run shows its failure in the header", async () => {
    await page.route("**/api/v1/runs/big", async (r) => {
      const res = await r.fetch();
      const run = await res.json();
      Object.assign(run, {
        status: "failed",
        exit_code: 1,
        cwd: "/home/ml/proj",
        git_dirty: true,
        failure: { exception_type: "torch.OutOfMemoryError", message: "CUDA out of memory. Tried to allocate 2.00 GiB", signal: null, stderr_tail: ["RuntimeError: boom"], traceback: "Traceback (most recent call last):\n  File \"train.py\", line 88, in <module>\n    loss.backward()" },
      });
      await r.fulfill({ response: res, json: run });
    });
    await page.goto(`${server.base}/r/big?tab=config`);
    await page.waitForSelector(".failure");
    assert.match(await page.textContent(".failure summary"), /torch\.OutOfMemoryError: CUDA out of memory/);
    assert.match(await page.textContent(".run-head"), /\(dirty\)/);
    assert.match(await page.textContent(".cfg-line"), /lr=3e-4/);
    assert.equal(await page.textContent(".crumbs"), "projects / e2e / big-1m");
    await page.screenshot({ path: join(shots, "09b-failed-run.png") });
    await page.unrouteAll();
  });

  test("diagnosis shows incidents with ranked causes, evidence and fixes, and spans on charts", async () => {
    const cuda = (await api.get("/api/v1/runs/big/logs?q=CUDA")).records[0];
    const incident = {
      id: "inc-1", project: P, run: "big", group: null, host: "node-7", state: "open", severity: "critical",
      kind: "loss_spike", title: "Loss spiked 2000× at step 654321", opened: 1_700_000_100, updated: 1_700_000_120, resolved: null,
      start_time: 1_700_006_543, end_time: 1_700_006_600, start_step: 650_000, end_step: 660_000,
      causes: [
        { kind: "data", title: "A corrupt batch", score: 0.35, explanation: "One batch had extreme values.", fixes: ["Skip batches with non-finite inputs"], evidence: [] },
        { kind: "optimizer", title: "Learning rate too high", score: 0.82, explanation: "The spike follows the warmup's end.", fixes: ["Lower lr to 1e-4", "Enable gradient clipping at 1.0"],
          evidence: [
            { kind: "series", run: "big", series: "train/loss", step: 654321, time: 1_700_006_543.21, value: 1000, detail: "2000× the running median" },
            { kind: "log", run: "big", seq: cuda.seq, time: cuda.time, text: cuda.text },
          ] },
      ],
      anomalies: [{ run: "big", series: "train/loss", detector: "spike", start_step: 654_321, end_step: 654_321, start_time: 1_700_006_543.21, end_time: 1_700_006_543.21, score: 9.5, detail: "z=40" }],
    };
    await page.route("**/api/v1/runs/big/incidents", (r) => r.fulfill({ json: { incidents: [incident] } }));
    await page.route("**/api/v1/runs/big/health", (r) => r.fulfill({ json: { score: 41, breakdown: [{ indicator: "loss_spike", penalty: 40, detail: "an open critical incident" }, { indicator: "throughput", penalty: 19, detail: "step time +20%" }] } }));
    await page.goto(`${server.base}/r/big`);
    await page.waitForFunction(() => window.__loupe.charts["big:train/loss"]?.spans === 2);
    assert.match(await page.textContent('[data-tab="diagnosis"]'), /\(1\)/);
    await page.screenshot({ path: join(shots, "10c-incident-span.png") });
    await page.click('[data-tab="diagnosis"]');
    await page.waitForSelector(".incident");
    const causes = await page.$$eval(".cause b", (b) => b.map((x) => x.textContent));
    assert.deepEqual(causes, ["Learning rate too high", "A corrupt batch"]);
    assert.match(await page.textContent(".diagnosis"), /Enable gradient clipping/);
    assert.match(await page.textContent(".health-score"), /41/);
    await page.screenshot({ path: join(shots, "10d-diagnosis-incident.png"), fullPage: true });
    await page.click('.evidence a[href*="tab=logs"]');
    await page.waitForSelector(".log-line.at");
    assert.match(await page.textContent(".log-line.at"), /CUDA error/, await page.textContent(".log-lines"));
    await page.unrouteAll();
  });

  test("feedback: clicking \"confirmed\" on a cause stores it, and the buttons show what is stored", async () => {
    await api.createRun({ id: "fb-1", project: P, name: "oom" });
    const text = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which 1.12 GiB is free.";
    await api.post("/api/v1/runs/fb-1/logs", { records: [{ text, stream: "stderr", level: "error" }] });
    let incident;
    for (let i = 0; i < 100 && !incident; i++) {
      incident = (await api.get("/api/v1/runs/fb-1/incidents")).incidents[0];
      if (!incident) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(incident, "the OOM line became an incident");
    const kind = incident.causes[0].kind;
    await page.goto(`${server.base}/r/fb-1?tab=diagnosis`);
    const confirm = `.incident button.fb[data-verdict="confirmed"][data-cause="${kind}"]`;
    await page.waitForSelector(confirm);
    assert.match(await page.textContent(".fb-weights"), /No feedback yet/);
    await page.click(confirm);
    await page.waitForSelector(`${confirm}.on`);
    assert.match(await page.textContent(".fb-status"), /Recorded/);
    const stored = (await api.get(`/api/v1/incidents/${incident.id}/feedback`)).feedback;
    assert.equal(stored.length, 1);
    assert.equal(stored[0].cause, kind);
    assert.equal(stored[0].verdict, "confirmed");
    assert.equal(stored[0].who, "local");
    const weights = await api.get(`/api/v1/projects/${P}/feedback`);
    assert.deepEqual(weights.causes.map((c) => [c.cause, c.confirmed, c.weight]), [[kind, 1, 1.25]]);
    // Reloaded, the page shows the stored mark and the project's weight.
    await page.reload();
    await page.waitForSelector(`${confirm}.on`);
    await page.waitForFunction(() => /×1\.25/.test(document.querySelector(".fb-weights")?.textContent ?? ""));
    assert.equal(await page.$$eval('.incident button.fb.on', (b) => b.length), 1);
    await page.screenshot({ path: join(shots, "10e-diagnosis-feedback.png"), fullPage: true });
  });

  test("compare overlays two runs and shows only the config differences", async () => {
    await page.goto(`${server.base}/compare?runs=cmp-a,cmp-b`);
    await page.waitForSelector("table.diff");
    await waitCharts(2);
    const loss = await page.evaluate(() => {
      const c = window.__loupe.charts["compare:train/loss"];
      return { width: c.width, lines: c.lines.map((l) => ({ label: l.label, points: l.points })) };
    });
    // Each run's line is what the server's M4 gives at the chart's width.
    const expected = [];
    for (const id of ["cmp-a", "cmp-b"]) {
      const d = await api.get(`/api/v1/runs/${id}/series/data?name=train%2Floss&x=step&width=${loss.width}`);
      expected.push({ label: id, points: d.x.length });
    }
    assert.deepEqual(loss.lines, expected);
    assert.ok(expected[0].points > loss.width);
    const keys = await page.$$eval("table.diff tbody tr", (rows) => rows.map((r) => r.dataset.key));
    assert.deepEqual(keys, ["batch", "lr"]);
    await page.screenshot({ path: join(shots, "11-compare.png") });
    await page.selectOption('select[aria-label="align by"]', "rel");
    await page.waitForFunction(() => window.__loupe.charts["compare:train/loss"]?.fetches >= 2);
  });

  test("a running run's charts follow new points live (SSE)", async () => {
    await page.goto(`${server.base}/r/cmp-a?smooth=0.9`);
    await waitCharts(2);
    const fetches = await page.evaluate(() => window.__loupe.charts["cmp-a:train/loss"].fetches);
    await api.post("/api/v1/runs/cmp-a/metrics", { series: [{ name: "train/loss", step: [2500], value: [2.5] }] });
    await page.waitForFunction((n) => window.__loupe.charts["cmp-a:train/loss"].fetches > n, fetches, { timeout: 10_000 });
    const lastX = await page.evaluate(() => window.__loupe.charts["cmp-a:train/loss"].lines[0].x.at(-1));
    assert.equal(lastX, 2500);
    assert.match(page.url(), /smooth=0.9/);
    await page.screenshot({ path: join(shots, "12-smoothed-live.png") });
  });

  test("dark theme", async () => {
    await page.emulateMedia({ colorScheme: "dark" });
    await page.goto(`${server.base}/r/big`);
    await waitCharts(2);
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, "rgb(15, 17, 21)");
    await page.screenshot({ path: join(shots, "13-run-dark.png") });
    await page.emulateMedia({ colorScheme: "light" });
    // The toggle (t) goes auto → dark → light → auto, and sticks across pages.
    await page.keyboard.press("t");
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
    await page.goto(`${server.base}/p/${P}`);
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
    await page.keyboard.press("t");
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "light");
    await page.keyboard.press("t");
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), undefined);
    // "/" focuses the filter box.
    await page.keyboard.press("/");
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute("aria-label")), "filter runs");
  });
});

describe("alerts", () => {
  const A = "alerting";
  /** Points stamped now, so threshold rules see them as fresh. */
  const hot = async (id, values) => {
    await api.createRun({ id, project: A, name: id });
    const now = Date.now() / 1000;
    await api.post(`/api/v1/runs/${id}/metrics`, {
      series: [{ name: "train/loss", step: values.map((_, i) => i), time: values.map((_, i) => now - values.length + i + 1), value: values }],
    });
  };
  const firing = async () => (await api.get("/api/v1/alerts")).alerts.filter((a) => a.rule === "loss-high" && a.state === "firing");
  async function until(f, what, ms = 15_000) {
    const t0 = Date.now();
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  /**
   * Waits on state, never on time: the built-in rules (stalled_run on the
   * runs these tests leave silent) may fire alerts of their own at any
   * moment, so counts on the page are checked against what the API says
   * now, and only `loss-high`'s own alerts are counted exactly.
   */
  async function badgeShowsFiring(lossHigh) {
    let last;
    await until(async () => {
      const { alerts } = await api.get("/api/v1/alerts");
      const all = alerts.filter((a) => a.state === "firing").length;
      const ours = alerts.filter((a) => a.rule === "loss-high" && a.state === "firing").length;
      const shown = await page.evaluate(() => {
        const c = document.querySelector(".alert-count");
        return c && !c.hidden ? Number(c.textContent) : 0;
      });
      last = { all, ours, shown };
      return ours === lossHigh && shown === all;
    }, () => `the badge to show every firing alert, ${lossHigh} of them loss-high (last: ${JSON.stringify(last)})`);
  }
  /** The page's count agrees with the API's failed deliveries to hook-broken. */
  async function failuresShown() {
    await until(async () => {
      const failed = (await api.get("/api/v1/alerts")).channels["hook-broken"]?.failed ?? 0;
      const cell = await page.textContent('tr[data-channel="hook-broken"] td.bad').catch(() => null);
      const warn = await page.textContent(".deliv-warn").catch(() => null);
      return failed >= 1 && cell === String(failed) && new RegExp(`^${failed} notifications? could not be delivered`).test(warn ?? "");
    }, "the page to show the API's failed deliveries");
  }

  test("the alerts page shows a firing threshold alert, its deliveries (failures too) and the rules", async () => {
    await hot("hot-1", [1, 2, 9.5]);
    await until(async () => (await firing()).some((a) => a.labels.run === "hot-1"), "loss-high to fire on hot-1");
    // One notification per channel: the good one delivered, the broken one given up.
    await until(async () => {
      const ch = (await api.get("/api/v1/alerts")).channels;
      return ch["hook-ok"]?.delivered >= 1 && ch["hook-broken"]?.failed >= 1;
    }, "deliveries");
    assert.match(received["/ok"][0], /loss-high/);

    await page.emulateMedia({ colorScheme: "light" });
    await page.goto(`${server.base}/`);
    await page.click("a.alerts-link");
    await page.waitForURL(/\/alerts$/);
    const row = 'tr[data-state="firing"]:has-text("loss-high")';
    await page.waitForSelector(row);
    assert.equal(await page.textContent(`${row} .badge`), "firing");
    assert.equal(await page.textContent(`${row} .sev`), "critical");
    assert.match(await page.textContent(`${row} td.summary`), /train\/loss = 9\.5 in run hot-1/);
    assert.equal(await page.getAttribute(`${row} a[href^="/r/"]`, "href"), "/r/hot-1");
    await badgeShowsFiring(1);
    assert.equal(await page.textContent(".crumbs"), "projects / alerts");
    // Delivery: per-channel counts with the failure visible, and its error.
    await page.waitForSelector('tr[data-channel="hook-broken"] td.bad');
    await failuresShown();
    assert.match(await page.textContent('tr[data-outcome="failed"] .note-err'), /400/);
    assert.equal(await page.textContent('tr[data-outcome="delivered"] td:nth-child(2)'), "hook-ok");
    // Rules: the file's rule and the built-ins, with their sources.
    await page.waitForSelector('tr[data-rule="loss-high"]');
    assert.equal(await page.textContent('tr[data-rule="loss-high"] .badge'), "file");
    assert.match(await page.textContent('tr[data-rule="loss-high"] code'), /train\/loss > 5/);
    assert.equal(await page.textContent('tr[data-rule="builtin:crashed_run"] .badge'), "builtin");
    await page.screenshot({ path: join(shots, "14-alerts.png"), fullPage: true });
    // The state filter lives in the query string.
    await page.click('button[data-state="resolved"]');
    assert.match(page.url(), /\/alerts\?state=resolved$/);
    await page.waitForSelector(".alerts-list .empty");
    await page.goto(`${server.base}/alerts?state=firing`);
    await page.waitForSelector(row);
    assert.equal(await page.getAttribute('button[data-state="firing"]', "aria-pressed"), "true");
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: join(shots, "15-alerts-dark.png"), fullPage: true });
    await page.emulateMedia({ colorScheme: "light" });
  });

  test("an alert that fires while a page is open shows a toast; at most 3 stack", async () => {
    await page.goto(`${server.base}/p/${P}`);
    await page.waitForFunction(() => (window.__loupe.liveOpen ?? 0) >= 1);
    await hot("hot-2", [12]);
    const toast = '.toast[data-alert]:has-text("hot-2")';
    await page.waitForSelector(toast, { timeout: 15_000 });
    assert.match(await page.getAttribute(toast, "class"), /sev-critical/);
    assert.match(await page.textContent(`${toast} .toast-title`), /Firing: loss-high/);
    assert.equal(await page.getAttribute(`${toast} a[href^="/r/"]`, "href"), "/r/hot-2");
    await badgeShowsFiring(2);
    await page.screenshot({ path: join(shots, "16-toast.png") });
    // Dismissable.
    await page.click(`${toast} .toast-x`);
    assert.equal(await page.$(toast), null);
    // Four more alerts at once: the newest three toasts stay.
    for (const id of ["hot-3", "hot-4", "hot-5", "hot-6"]) await hot(id, [20]);
    await badgeShowsFiring(6);
    assert.equal((await page.$$(".toast")).length, 3);
    // The toast's alert link opens the alerts page on that alert.
    const id = await page.getAttribute(".toast >> nth=0", "data-alert");
    await page.click('.toast >> nth=0 >> a:has-text("alert")');
    await page.waitForURL(/\/alerts\?alert=/);
    await page.waitForSelector(`tr.focus[data-alert="${id}"]`);
  });

  test("a silence created in the UI reaches the API, mutes the alert, and can be expired", async () => {
    await page.goto(`${server.base}/alerts`);
    await page.waitForSelector('tr[data-state="firing"]:has(a[href="/r/hot-1"])');
    await page.fill(".sil-matchers", "alertname=loss-high run=hot-1");
    await page.fill(".sil-duration", "1h");
    await page.fill(".sil-comment", "e2e maintenance");
    await page.click('.sil-form button[type="submit"]');
    await page.waitForSelector("tr[data-silence]");
    const { silences } = await api.get("/api/v1/silences");
    assert.equal(silences.length, 1);
    assert.deepEqual(silences[0].matchers, { alertname: "loss-high", run: "hot-1" });
    assert.equal(silences[0].comment, "e2e maintenance");
    assert.ok(Math.abs(silences[0].ends - silences[0].starts - 3600) < 1, JSON.stringify(silences[0]));
    // The engine marks the alert at its next evaluation; the page polls.
    await page.waitForFunction(() => /silenced by sil-/.test(document.querySelector('tr[data-alert]:has(a[href="/r/hot-1"])')?.textContent ?? ""), null, { timeout: 15_000 });
    // A bad matcher is refused in the form, not sent.
    await page.fill(".sil-matchers", "run");
    await page.click('.sil-form button[type="submit"]');
    assert.match(await page.textContent(".sil-error"), /not label=value/);
    // Filling the form scrolled the page; from the top, the sticky header stays at the top of a full-page shot.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(shots, "17-alerts-silenced.png"), fullPage: true });
    await page.click(`tr[data-silence="${silences[0].id}"] button`);
    await page.waitForSelector("tr[data-silence]", { state: "detached" });
    assert.equal((await api.get("/api/v1/silences")).silences.filter((s) => s.ends > Date.now() / 1000).length, 0);
  });
});

describe("first hour", () => {
  test("units: bytes, rates, %, °C and durations at four significant digits", async () => {
    await page.goto(`${server.base}/`);
    await page.waitForFunction(() => window.__loupe.format);
    const got = await page.evaluate(() => {
      const f = window.__loupe.format;
      return {
        units: ["gpu/0/memory_used_bytes", "perf/tokens_per_s", "gpu/1/utilization", "sys/host.cpu_percent", "gpu/3/temperature", "perf/step_time", "train/loss", "gpu/1/sm_clock_mhz", "sys/disk_read_bytes_per_s", "llm.ttft_seconds", "train/lr"].map(f.unitOf),
        values: [
          f.fmtSeriesValue(6.008e10, "gpu/0/memory_used_bytes"),
          f.fmtSeriesValue(48035.3663, "perf/tokens_per_s"),
          f.fmtSeriesValue(3.4224626523975448, "perf/step_time"),
          f.fmtSeriesValue(0.0123, "perf/step_time"),
          f.fmtSeriesValue(95.18403, "gpu/1/utilization"),
          f.fmtSeriesValue(88.8347594292511, "gpu/3/temperature"),
          f.fmtSeriesValue(3.4224626523975448, "train/loss"),
          f.fmtSeriesValue(3e-4, "train/lr"),
          f.fmtSeriesValue(1415.2853520061972, "gpu/1/sm_clock_mhz"),
          f.fmtSeriesValue(5.5e8, "sys/disk_read_bytes_per_s"),
          f.fmtSeriesValue(NaN, "train/loss"),
          f.fmtNum(518),
        ],
        text: [
          f.humanizeText("fell from 48035.3663 to 39699.9368 (-17%)", "per_s"),
          f.humanizeText("growing steadily (6.779e7/s, R² 0.85), reaching its limit in about 3 min", "bytes"),
          f.humanizeText("perf/step_time is 1.8550 against the group's median 1.3647 (+36%)", "seconds"),
          f.humanizeText("step 518 of 600: 16.1630 is 28.9 robust deviations"),
        ],
      };
    });
    assert.deepEqual(got.units, ["bytes", "per_s", "percent", "percent", "celsius", "seconds", "none", "mhz", "bytes/s", "seconds", "none"]);
    assert.deepEqual(got.values, ["55.95 GiB", "48.04k/s", "3.422 s", "12.3 ms", "95.2%", "88.8 °C", "3.422", "3e-4", "1.415 GHz", "524.5 MiB/s", "NaN", "518"]);
    assert.deepEqual(got.text, [
      "fell from 48.04k/s to 39.7k/s (-17%)",
      "growing steadily (64.65 MiB/s, R² 0.85), reaching its limit in about 3 min",
      "perf/step_time is 1.855 s against the group's median 1.365 s (+36%)",
      "step 518 of 600: 16.16 is 28.9 robust deviations",
    ]);
    // On a chart: the head names the unit, the legend and the axis use it.
    await page.goto(`${server.base}/r/${JOB}.r5?s=memory`);
    await waitCharts(1);
    const mem = `${JOB}.r5:gpu/0/memory_used_bytes`;
    const probe = await page.evaluate((id) => window.__loupe.charts[id], mem);
    assert.equal(probe.unit, "bytes");
    assert.match(probe.legend, /^last \d+(\.\d+)? GiB$/);
    const axis = await page.$$eval(`[data-chart="${mem}"] .u-axis`, (a) => a.map((x) => x.textContent).join(" "));
    assert.doesNotMatch(axis, /e\+|\d{6,}/, axis);
    assert.match(await page.textContent(`[data-chart="${mem}"] .chart-unit`), /bytes/);
  });

  test("the runs table groups a job's ranks into one row, expandable, with why it failed", async () => {
    await page.goto(`${server.base}/p/${J}`);
    await page.waitForSelector('.runs-table[data-loaded="1"] .vt-row');
    const rowKeys = () => page.$$eval(".vt-row", (rows) => rows.sort((a, b) => a.dataset.index - b.dataset.index).map((r) => r.dataset.key));
    assert.deepEqual((await rowKeys()).sort(), [`job::${JOB}`, "solo"]);
    assert.match(await page.textContent(".count"), /9 runs · 1 job/);
    const job = `.vt-row[data-key="job::${JOB}"]`;
    assert.match(await page.textContent(`${job} .badge`), /failed/);
    assert.match(await page.textContent(job), /8 ranks/);
    assert.match(await page.textContent(`${job} .why`), /rank 5 ran out of GPU memory at step 518; the other 7 ranks were stopped/);
    await page.click(`${job} button.caret`);
    await page.waitForFunction(() => document.querySelectorAll(".vt-row").length === 10);
    const keys = await rowKeys();
    const at = keys.indexOf(`job::${JOB}`);
    assert.deepEqual(keys.slice(at + 1, at + 9), Array.from({ length: 8 }, (_, i) => `${JOB}.r${i}`));
    assert.match(await page.textContent(`.vt-row[data-key="${JOB}.r5"] .why`), /ran out of GPU memory/);
    // A rank the launcher stopped says only what it did.
    assert.equal(await page.textContent(`.vt-row[data-key="${JOB}.r3"] .why`), "exited with code 1");
    await page.screenshot({ path: join(shots, "20-job-expanded.png") });
    // Folding again; grouping off lists every rank as its own row.
    await page.click(`${job} button.caret`);
    await page.waitForFunction(() => document.querySelectorAll(".vt-row").length === 2);
    await page.click('input[aria-label="group runs by job"]');
    await page.waitForFunction(() => document.querySelectorAll(".vt-row").length === 9);
    assert.match(page.url(), /group=0/);
    // The job view: its ranks only, unfolded, and the crumbs say where.
    await page.goto(`${server.base}/p/${J}?job=${JOB}`);
    await page.waitForFunction(() => document.querySelectorAll(".vt-row").length === 9);
    assert.equal(await page.textContent(".crumbs"), `projects / ${J} / job ${JOB}`);
  });

  test("incident counts are open and total, for runs, jobs (once) and project cards", async () => {
    // Five incidents, all resolved: the count still shows them. The job's
    // incidents touch every rank and count once for the job.
    const incs = Array.from({ length: 5 }, (_, i) => ({ id: `ji-${i}`, project: J, run: null, group: JOB, state: "resolved", severity: "warning", kind: "k", title: `t${i}`, opened: T0 + i, updated: T0 + i, resolved: T0 + 100, start_time: T0, end_time: T0 + 10, start_step: 10, end_step: 20, causes: [], anomalies: [], runs: [] }));
    await page.route("**/api/v1/incidents?*", (r) => r.fulfill({ json: { incidents: incs } }));
    await page.route(`**/api/v1/runs?*`, async (r) => {
      const res = await r.fetch();
      const body = await res.json();
      for (const run of body.runs) if (run.group === JOB) Object.assign(run, { open_incidents: 0, total_incidents: 5 });
      await r.fulfill({ response: res, json: body });
    });
    await page.goto(`${server.base}/p/${J}`);
    await page.waitForSelector(`.vt-row[data-key="job::${JOB}"] .inc-cell`);
    await page.waitForFunction((k) => document.querySelector(`.vt-row[data-key="${k}"] .inc-cell`)?.textContent === "0 / 5", `job::${JOB}`);
    await page.unrouteAll();
    // The API's totals are real: a run's total_incidents and a project's
    // counts agree with the incidents diagnosis stored (open or resolved).
    const stored = (await api.get(`/api/v1/incidents?project=${J}&limit=1000`)).incidents;
    const ofR5 = (await api.get(`/api/v1/runs/${JOB}.r5/incidents`)).incidents;
    const run = await api.get(`/api/v1/runs/${JOB}.r5`);
    assert.equal(run.total_incidents, ofR5.length);
    assert.equal(run.open_incidents, ofR5.filter((i) => i.state === "open").length);
    const projects = (await api.get("/api/v1/projects")).projects;
    const jobs = projects.find((p) => p.name === J);
    const open = stored.filter((i) => i.state === "open").length;
    assert.deepEqual([jobs.runs, jobs.failed, jobs.open_incidents, jobs.incidents], [9, 8, open, stored.length]);
    assert.ok(jobs.last_activity >= T0);
    await page.goto(`${server.base}/`);
    await page.waitForSelector(`[data-project="${J}"] [data-stat="failed"]`);
    assert.match(await page.textContent(`[data-project="${J}"] [data-stat="failed"]`), /8\s*failed/);
    assert.match(await page.textContent(`[data-project="${J}"] [data-stat="incidents"]`), new RegExp(`${open}\\s*open / ${stored.length}\\s*incidents`));
    assert.match(await page.textContent(`[data-project="${J}"] [data-stat="activity"]`), /last activity/);
  });

  test("each rank's page has the job banner; only the failing rank has a failure box", async () => {
    await page.goto(`${server.base}/r/${JOB}.r2`);
    await page.waitForSelector(".job-banner");
    assert.match(await page.textContent(".job-banner"), /rank 5 ran out of GPU memory at step 518; the other 7 ranks were stopped/);
    assert.equal(await page.$(".failure"), null, "a rank stopped by the launcher has no (empty) failure box");
    assert.equal(await page.textContent(".crumbs"), `projects / ${J} / job ${JOB} / rank 2 · ${JOB}.r2`);
    await page.click(".job-banner a:has-text('Open rank 5')");
    await page.waitForURL(new RegExp(`/r/${JOB}.r5$`));
    await page.waitForSelector(".failure");
    assert.match(await page.textContent(".job-banner"), /This is that rank/);
    assert.match(await page.textContent(".failure summary"), /torch.OutOfMemoryError/);
    await page.screenshot({ path: join(shots, "21-job-banner.png") });
  });

  test("hover is shared by every chart of a run: step, wall-clock time and each value", async () => {
    await page.goto(`${server.base}/r/${JOB}.r0`);
    await waitCharts(5);
    const loss = `${JOB}.r0:train/loss`;
    const box = await (await page.$(`[data-chart="${loss}"] .u-over`)).boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
    await page.waitForFunction(() => Object.values(window.__loupe.charts).every((c) => c.hoverX !== null));
    const hovered = await page.evaluate(() => Object.fromEntries(Object.entries(window.__loupe.charts).map(([k, c]) => [k, { x: c.hoverX, legend: c.legend }])));
    const xs = new Set(Object.values(hovered).map((c) => c.x));
    assert.equal(xs.size, 1, JSON.stringify(hovered));
    const step = [...xs][0];
    // The time arrives after the pointer rests: one raw read of that step.
    await page.waitForFunction((id) => /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(window.__loupe.charts[id].legend), loss);
    const legends = await page.evaluate(() => Object.fromEntries(Object.entries(window.__loupe.charts).map(([k, c]) => [k, c.legend])));
    const expectTime = new Date((T0 + step) * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    const hms = `${pad(expectTime.getHours())}:${pad(expectTime.getMinutes())}:${pad(expectTime.getSeconds())}`;
    assert.match(legends[loss], new RegExp(`^step ${step}.*${hms}`));
    assert.match(legends[`${JOB}.r0:gpu/0/memory_used_bytes`], /step \d+.*GiB/);
    assert.match(legends[`${JOB}.r0:perf/step_time`], /3\.422 s/);
    await page.screenshot({ path: join(shots, "22-synced-hover.png") });
    // Compare: the same, across the runs' charts.
    await page.goto(`${server.base}/compare?runs=cmp-a,cmp-b`);
    await waitCharts(2);
    const cbox = await (await page.$('[data-chart="compare:train/loss"] .u-over')).boundingBox();
    await page.mouse.move(cbox.x + cbox.width * 0.3, cbox.y + cbox.height / 2);
    // M4 keeps different points per series: the synced x is the nearest one drawn.
    await page.waitForFunction(() => {
      const [a, b] = [window.__loupe.charts["compare:eval/acc"].hoverX, window.__loupe.charts["compare:train/loss"].hoverX];
      return a !== null && b !== null && Math.abs(a - b) <= 20;
    });
    assert.match(await page.evaluate(() => window.__loupe.charts["compare:eval/acc"].legend), /cmp-a .*cmp-b /);
  });

  test("the hover line is shared only by charts on the same kind of x axis", async () => {
    const run = `${JOB}.r0`;
    await page.goto(`${server.base}/r/${run}`);
    await waitCharts(5);
    // Beside the run's step charts, two more charts of the same run under the
    // page's sync key: one on wall-clock time, one on steps.
    const probes = { time: "probe:time", rel: "probe:rel", step: "probe:step" };
    await page.evaluate(({ run, probes }) => {
      const C = window.__loupe.Chart;
      const holder = document.createElement("div");
      holder.className = "probe-charts";
      document.querySelector("main").prepend(holder);
      for (const [xMode, id] of Object.entries(probes)) {
        const c = new C({ id, title: id, lines: [{ label: "loss", color: "#f00", run, name: "train/loss", offset: 0 }], xMode, log: false, smoothing: 0, syncKey: `run:${run}` });
        holder.append(c.el);
        void c.load();
      }
    }, { run, probes });
    await page.waitForFunction((ids) => ids.every((k) => window.__loupe.charts[k]?.drawnAt > 0), Object.values(probes));
    assert.deepEqual(await page.evaluate((ids) => ids.map((k) => window.__loupe.charts[k].axis), Object.values(probes)), ["time", "rel", "step"]);
    const loss = `${run}:train/loss`;
    await page.$eval(`[data-chart="${loss}"]`, (el) => el.scrollIntoView({ block: "center" }));
    const box = await (await page.$(`[data-chart="${loss}"] .u-over`)).boundingBox();
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height / 2);
    await page.waitForFunction((id) => window.__loupe.charts[id].hoverX !== null, probes.step);
    const hover = await page.evaluate(() => Object.fromEntries(Object.entries(window.__loupe.charts).map(([k, c]) => [k, c.hoverX])));
    // The step chart follows the hovered step; the time charts show nothing.
    assert.equal(hover[probes.step], hover[loss], JSON.stringify(hover));
    assert.equal(hover[probes.time], null, JSON.stringify(hover));
    assert.equal(hover[probes.rel], null, JSON.stringify(hover));
    // And so does what is drawn: uPlot's cursor line inside the plot only where it syncs.
    const lineInside = (id) =>
      page.evaluate((id) => {
        const chart = document.querySelector(`[data-chart="${id}"]`);
        const over = chart.querySelector(".u-over").getBoundingClientRect();
        const line = chart.querySelector(".u-cursor-x");
        if (!line || getComputedStyle(line).display === "none") return false;
        const r = line.getBoundingClientRect();
        return r.left >= over.left && r.left <= over.right;
      }, id);
    assert.equal(await lineInside(probes.step), true);
    assert.equal(await lineInside(probes.time), false);
    assert.equal(await lineInside(probes.rel), false);
    // Hovering the time chart moves no step chart's line.
    await page.mouse.move(box.x - 30, box.y - 30);
    await page.waitForFunction((id) => window.__loupe.charts[id].hoverX === null, probes.step);
    await page.$eval(`[data-chart="${probes.time}"]`, (el) => el.scrollIntoView({ block: "center" }));
    const tbox = await (await page.$(`[data-chart="${probes.time}"] .u-over`)).boundingBox();
    await page.mouse.move(tbox.x + tbox.width * 0.5, tbox.y + tbox.height / 2);
    await page.waitForFunction((id) => window.__loupe.charts[id].hoverX !== null, probes.time);
    await new Promise((r) => setTimeout(r, 200));
    const after = await page.evaluate(() => Object.fromEntries(Object.entries(window.__loupe.charts).map(([k, c]) => [k, c.hoverX])));
    assert.equal(after[probes.step], null, JSON.stringify(after));
    assert.equal(after[loss], null, JSON.stringify(after));
    assert.equal(await lineInside(probes.step), false);
  });

  test("times read the same everywhere: one zone, one format, the full timestamp on hover", async () => {
    // A zone no test machine runs in, with a quarter-hour offset and no DST:
    // a time formatted in UTC or on the server would not match.
    const zone = "Asia/Kathmandu";
    const offset = "UTC+05:45";
    const parts = (unix) => {
      const ms = Math.floor(unix * 1000);
      const p = Object.fromEntries(
        new Intl.DateTimeFormat("en-GB", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" })
          .formatToParts(new Date(ms))
          .map((x) => [x.type, x.value]),
      );
      const msPart = String(ms % 1000).padStart(3, "0");
      return { date: `${p.year}-${p.month}-${p.day}`, clock: `${p.hour}:${p.minute}:${p.second}`, ms: msPart, full: `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}.${msPart} ${offset}` };
    };
    const ctx = await browser.newContext({ timezoneId: zone, viewport: { width: 1400, height: 900 } });
    const tz = await ctx.newPage();
    const start = (await api.get("/api/v1/runs/big")).start_time;
    // An incident at the times of log lines the logs tab shows (made once they are known).
    let incident = null;
    await tz.route("**/api/v1/runs/big/incidents", (r) => r.fulfill({ json: { incidents: incident ? [incident] : [] } }));
    /** Every <time> on the page: its style, text, hover and Unix seconds. */
    const times = () => tz.$$eval("time[data-t]", (els) => els.map((e) => ({ cls: e.className, text: e.textContent, title: e.title, t: Number(e.dataset.t), iso: e.dateTime })));
    const check = (list, where) => {
      assert.ok(list.length > 0, `${where}: no times`);
      for (const x of list) {
        const want = parts(x.t);
        assert.equal(x.title, want.full, `${where}: hover of ${JSON.stringify(x)}`);
        assert.equal(x.iso, new Date(Math.floor(x.t * 1000)).toISOString(), where);
        if (x.cls === "t-absolute") assert.match(x.text, new RegExp(`${want.date} ${want.clock}$`), `${where}: ${JSON.stringify(x)}`);
        else if (x.cls === "t-clock") assert.equal(x.text, `${want.clock}.${want.ms}`, `${where}: ${JSON.stringify(x)}`);
        else if (x.cls === "t-ago") assert.match(x.text, /( ago|just now)$/, `${where}: ${JSON.stringify(x)}`);
        else assert.fail(`${where}: unknown time style ${x.cls}`);
      }
    };
    // The run's header, its logs and its incidents.
    await tz.goto(`${server.base}/r/big`);
    await tz.waitForSelector(".facts time");
    const header = await times();
    check(header, "run header");
    assert.ok(header.some((x) => x.t === start && x.cls === "t-absolute"), JSON.stringify(header));
    await tz.click('a.tab[data-tab="logs"]');
    await tz.waitForSelector(".log-line time");
    const logTimes = await tz.$$eval(".log-line time", (els) => els.map((e) => ({ cls: e.className, text: e.textContent, title: e.title, t: Number(e.dataset.t), iso: e.dateTime })));
    check(logTimes, "logs");
    // A log line's clock is its full timestamp's, to the millisecond.
    for (const x of logTimes) assert.ok(x.title.startsWith(`${parts(x.t).date} ${x.text}`), JSON.stringify(x));
    assert.ok(logTimes.length >= 6, `${logTimes.length} log lines shown`);
    const [a, b, c] = [logTimes[3].t, logTimes[4].t, logTimes[5].t];
    incident = {
      id: "inc-tz", project: P, run: "big", group: null, host: "node-7", state: "resolved", severity: "warning",
      kind: "loss_spike", title: "Loss spiked", opened: a, updated: b, resolved: c,
      start_time: a, end_time: b, start_step: null, end_step: null,
      causes: [{ kind: "data", title: "A corrupt batch", score: 0.5, explanation: "x", fixes: [], evidence: [] }],
      anomalies: [],
    };
    await tz.goto(`${server.base}/r/big?tab=diagnosis`);
    await tz.waitForSelector("article.incident time");
    const incTimes = await tz.$$eval("article.incident time", (els) => els.map((e) => ({ cls: e.className, text: e.textContent, title: e.title, t: Number(e.dataset.t), iso: e.dateTime })));
    check(incTimes, "incidents");
    for (const t of [incident.start_time, incident.end_time]) assert.ok(incTimes.some((x) => x.t === t), `incident time ${t}: ${JSON.stringify(incTimes)}`);
    // "resolved" reads on the data's clock (its evidence's end), as the header and logs do.
    const resolved = incTimes.find((x) => x.text.startsWith("resolved "));
    assert.equal(resolved?.t, incident.end_time, JSON.stringify(incTimes));
    // The incident's start and the log line at that instant read alike.
    const incStart = incTimes.find((x) => x.t === incident.start_time);
    const logAt = logTimes.find((x) => x.t === incident.start_time);
    assert.equal(incStart.text.slice(-8), logAt.text.slice(0, 8));
    // The runs table and the alerts page: how long ago, the same hover.
    await tz.goto(`${server.base}/p/${P}`);
    await tz.waitForSelector("time.t-ago");
    check(await times(), "runs table");
    await tz.goto(`${server.base}/`);
    await tz.waitForSelector("time.t-ago");
    check(await times(), "projects");
    await ctx.close();
  });

  test("one zoom for all charts, on demand", async () => {
    await page.goto(`${server.base}/r/${JOB}.r0`);
    await waitCharts(5);
    await page.click('input[aria-label="zoom all charts together"]');
    assert.match(page.url(), /zall=1/);
    await page.evaluate(() => Object.values(window.__loupe.charts).length);
    const over = await page.$(`[data-chart="${JOB}.r0:train/loss"] .u-over`);
    const box = await over.boundingBox();
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height / 2, { steps: 4 });
    await page.mouse.up();
    await page.waitForFunction(() => Object.values(window.__loupe.charts).every((c) => c.zoom !== null));
    const zooms = await page.evaluate(() => Object.values(window.__loupe.charts).map((c) => c.zoom.join(":")));
    assert.equal(new Set(zooms).size, 1, zooms.join(", "));
    // Reload keeps it: every chart starts zoomed.
    await page.reload();
    await waitCharts(5);
    assert.ok(await page.evaluate(() => Object.values(window.__loupe.charts).every((c) => c.zoom !== null)));
    // A comparison too.
    await page.goto(`${server.base}/compare?runs=cmp-a,cmp-b&zall=1`);
    await waitCharts(2);
    const cbox = await (await page.$('[data-chart="compare:train/loss"] .u-over')).boundingBox();
    await page.mouse.move(cbox.x + cbox.width * 0.3, cbox.y + cbox.height / 2);
    await page.mouse.down();
    await page.mouse.move(cbox.x + cbox.width * 0.5, cbox.y + cbox.height / 2, { steps: 4 });
    await page.mouse.up();
    await page.waitForFunction(() => ["compare:train/loss", "compare:eval/acc"].every((k) => window.__loupe.charts[k].zoom !== null));
    const cz = await page.evaluate(() => ["compare:train/loss", "compare:eval/acc"].map((k) => window.__loupe.charts[k].zoom.join(":")));
    assert.equal(cz[0], cz[1]);
  });

  test("the system tab draws a run's host and GPU series against wall-clock time", async () => {
    await page.goto(`${server.base}/r/job-r1?tab=system`);
    await waitCharts(3);
    const modes = await page.evaluate(() => Object.values(window.__loupe.charts).map((c) => c.xMode));
    assert.ok(modes.length >= 3 && modes.every((m) => m === "time"), modes.join(","));
  });

  test("incident spans are labelled, on the charts their evidence touches, and link to the incident; evidence opens the chart zoomed", async () => {
    const inc = {
      id: "oom-1", project: J, run: null, group: JOB, host: null, state: "resolved", severity: "critical", kind: "gpu_memory_leak", title: "GPU memory leak",
      opened: T0 + 400, updated: T0 + 520, resolved: T0 + 600, start_time: T0 + 428, end_time: T0 + 518, start_step: 428, end_step: 518, runs: Array.from({ length: 8 }, (_, i) => `${JOB}.r${i}`),
      causes: [{ kind: "gpu_memory_leak", title: "GPU memory leak", score: 0.95, explanation: "GPU memory grew step after step: growing steadily (6.779e7/s, R² 0.85)", fixes: ["Do not keep tensors across steps"],
        evidence: [{ kind: "series", run: `${JOB}.r5`, series: "gpu/0/memory_used_bytes", step: 428, time: T0 + 428, value: 66445719442.53818, detail: "growing steadily (6.779e7/s, R² 0.85)" }] }],
      anomalies: [{ run: `${JOB}.r5`, series: "gpu/0/memory_used_bytes", detector: "trend", start_step: 428, end_step: 518, start_time: T0 + 428, end_time: T0 + 518, score: 5, detail: "slope 6.779e7/s" }],
    };
    await page.route("**/api/v1/runs/*/incidents", (r) => r.fulfill({ json: { incidents: [inc] } }));
    await page.goto(`${server.base}/r/${JOB}.r5`);
    await waitCharts(5);
    const mem = `${JOB}.r5:gpu/0/memory_used_bytes`;
    await page.waitForFunction((id) => window.__loupe.charts[id]?.spans === 2, mem);
    // Only the charts its evidence touches carry the span.
    assert.equal(await page.evaluate((id) => window.__loupe.charts[id].spans, `${JOB}.r5:train/loss`), 0);
    const label = await page.waitForSelector(`[data-chart="${mem}"] .span-label[data-incident="oom-1"]`);
    assert.equal(await label.textContent(), "GPU memory leak");
    await page.screenshot({ path: join(shots, "23-span-label.png") });
    await label.click();
    await page.waitForSelector('.incident.focused[data-incident="oom-1"]');
    assert.match(page.url(), /tab=diagnosis/);
    const card = await page.textContent('.incident[data-incident="oom-1"]');
    assert.match(card, /job llm-8/);
    assert.match(card, /ranks involved: 5/);
    assert.match(card, /64\.65 MiB\/s/);
    assert.match(card, /= 61\.88 GiB/);
    assert.doesNotMatch(card, /6\.779e7|66445719442/);
    await page.waitForSelector('.spark[data-drawn="1"] polyline');
    await page.screenshot({ path: join(shots, "24-diagnosis-job.png"), fullPage: true });
    await page.click(".evidence-link");
    await page.waitForFunction((id) => window.__loupe.charts[id]?.zoom !== null && window.__loupe.charts[id]?.drawnAt > 0, mem);
    const z = await page.evaluate((id) => window.__loupe.charts[id].zoom, mem);
    assert.ok(z[0] <= 428 && z[1] >= 428 && z[1] - z[0] <= 100, `zoomed on the evidence step: ${z}`);
    assert.match(page.url(), /mark=428/);
    await page.unrouteAll();
  });

  test("unknown run, project, compare ids and pages say so with a way back; bad filters say where and why", async () => {
    await page.goto(`${server.base}/r/no-such-run`);
    await page.waitForSelector('[data-not-found="run"]');
    assert.match(await page.textContent('[data-not-found="run"]'), /No run no-such-run/);
    assert.equal(await page.textContent(".crumbs"), "projects / run not found");
    await page.click('[data-not-found="run"] a:has-text("Back to projects")');
    await page.waitForSelector("[data-project]");
    await page.goto(`${server.base}/p/no-such-project`);
    await page.waitForSelector('[data-not-found="project"]');
    assert.match(await page.textContent('[data-not-found="project"]'), /No project no-such-project/);
    await page.goto(`${server.base}/compare?runs=nope-a,nope-b`);
    await page.waitForSelector('[data-not-found="runs to compare"]');
    await page.goto(`${server.base}/compare?runs=cmp-a,nope-b`);
    await page.waitForSelector(".cmp-legend .error");
    assert.match(await page.textContent(".cmp-legend .error"), /nope-b/);
    assert.equal(await page.textContent(".crumbs"), "projects / e2e / compare 1 run");
    await page.goto(`${server.base}/nowhere/at/all`);
    await page.waitForSelector('[data-not-found="page"]');
    assert.equal(await page.textContent(".crumbs"), "projects / not found");
    // Filters that do not parse: the bad part marked, and why.
    await page.goto(`${server.base}/p/${P}`);
    await page.waitForSelector('.runs-table[data-loaded="1"]');
    for (const [text, why] of [
      ["loss <", /loss < needs a value after it/],
      ["status:sleeping", /unknown status "sleeping"/],
      ["loss < abc", /"abc" is not a number/],
      ['name = "bert', /unclosed "/],
      ["lr => 3", /"=>" is not an operator/],
    ]) {
      await page.fill("input.filter", text);
      await page.waitForFunction((src) => new RegExp(src).test(document.querySelector(".filter-error")?.textContent ?? ""), why.source).catch(async () => {
        throw new Error(`${text}: ${await page.textContent(".filter-errors")}`);
      });
      assert.equal(await page.getAttribute("input.filter", "aria-invalid"), "true");
    }
    await page.fill("input.filter", "loss < 2");
    await page.waitForFunction(() => !document.querySelector(".filter-error"));
    // Breadcrumbs: never the previous page's project.
    await page.goto(`${server.base}/alerts`);
    await page.waitForSelector(".crumbs");
    assert.equal(await page.textContent(".crumbs"), "projects / alerts");
  });
});
