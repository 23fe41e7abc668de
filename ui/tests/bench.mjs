// The UI's numbers, in headless Chromium against a real `loupe serve`:
//   - a run page with 50 charts, one of them 10M points: time from
//     navigation until every chart is drawn; a zoom round trip (mouse up to
//     the redrawn chart);
//   - a runs table with 10k runs: first paint after navigation; a sort.
//
//   LOUPE_BIN=target/release/loupe node ui/tests/bench.mjs
//
// BENCH_POINTS (default 10000000) and BENCH_RUNS (default 10000) scale it.

import { client, launch, rng, startServer, waitSummaries } from "./lib.mjs";

const POINTS = Number(process.env.BENCH_POINTS ?? 10_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 10_000);
const REPEAT = 5;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs) => `median ${median(xs).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (n=${xs.length})`;

async function pool(n, width, f) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        await f(i);
      }
    }),
  );
}

const server = await startServer();
const api = client(server.base);
const rand = rng(3);
let t = Date.now();

await api.createRun({ id: "bench-50", project: "bench-run", name: "bench 50 charts", config: { lr: 1e-4 } });
await api.series("bench-50", "train/loss", POINTS, (i) => 3 * Math.exp(-i / (POINTS / 4)) + 0.3 * rand() + (i % 1_000_003 === 0 ? 5 : 0), { chunk: 1_000_000 });
const names = Array.from({ length: 49 }, (_, i) => `${["train", "eval", "sys", "gpu/0"][i % 4]}/metric${String(i).padStart(2, "0")}`);
await api.many("bench-50", names, 2000, (k, i) => Math.sin(i / (20 + k)) + k);
console.log(`seeded a 50-chart run (${POINTS.toLocaleString()} points in one series) in ${((Date.now() - t) / 1000).toFixed(1)} s`);

t = Date.now();
await pool(RUNS, 32, async (i) => {
  const id = `r${i}`;
  await api.createRun({ id, project: "bench", name: `run-${String(i).padStart(5, "0")}`, tags: i % 10 ? [] : ["tenth"], config: { lr: 10 ** -(2 + (i % 5)), batch: 32 * (1 + (i % 4)), seed: i }, host: `node-${i % 64}` });
  const v = 2 + rand();
  await api.patch(`/api/v1/runs/${id}`, { summary: { "train/loss": { last: v, min: v - 0.5, max: v + 2, count: 1000, last_step: 999 } } });
});
await waitSummaries(api, "bench", "train/loss", 1000);
console.log(`seeded ${RUNS.toLocaleString()} runs in ${((Date.now() - t) / 1000).toFixed(1)} s`);

const browser = await launch();
// Tall enough that all 50 charts are in view: lazy loading saves nothing here.
const page = await browser.newPage({ viewport: { width: 1600, height: 9000 } });

const drawAll = [];
for (let k = 0; k < REPEAT; k++) {
  await page.goto("about:blank");
  await page.goto(`${server.base}/r/bench-50`);
  await page.waitForFunction(() => Object.values(window.__loupe.charts).filter((c) => c.drawnAt > 0).length >= 50, null, { timeout: 30_000 });
  // performance.now() counts from the navigation's start.
  drawAll.push(await page.evaluate(() => Math.max(...Object.values(window.__loupe.charts).map((c) => c.drawnAt))));
}
const big = await page.evaluate(() => {
  const c = Object.values(window.__loupe.charts).find((c) => c.title === "train/loss");
  return { width: c.width, points: c.lines[0].points };
});

const zooms = [];
const over = await page.$('[data-chart="bench-50:train/loss"] .u-over');
const box = await over.boundingBox();
for (let k = 0; k < REPEAT; k++) {
  await page.evaluate(() => {
    window.__zoomStart = 0;
    document.querySelector('[data-chart="bench-50:train/loss"] .u-over').addEventListener("mouseup", () => (window.__zoomStart = performance.now()), { once: true, capture: true });
  });
  const a = 0.1 + 0.15 * k;
  await page.mouse.move(box.x + box.width * a, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * (a + 0.08), box.y + box.height / 2, { steps: 4 });
  await page.mouse.up();
  await page.waitForFunction(() => {
    const c = Object.values(window.__loupe.charts).find((c) => c.title === "train/loss");
    return window.__zoomStart > 0 && c.zoom !== null && c.drawnAt > window.__zoomStart;
  });
  zooms.push(await page.evaluate(() => Object.values(window.__loupe.charts).find((c) => c.title === "train/loss").drawnAt - window.__zoomStart));
  await page.evaluate(() => Object.values(window.__loupe.charts).length && document.querySelector('[data-chart="bench-50:train/loss"] button[title^="Reset"]').click());
  await page.waitForFunction(() => Object.values(window.__loupe.charts).find((c) => c.title === "train/loss").zoom === null);
}

await page.setViewportSize({ width: 1600, height: 1000 });
const paints = [];
const sorts = [];
for (let k = 0; k < REPEAT; k++) {
  await page.goto("about:blank");
  await page.goto(`${server.base}/p/bench`);
  await page.waitForFunction(() => window.__loupe.tableDrawnAt > 0 && document.querySelector(".vt-row"));
  paints.push(await page.evaluate(() => window.__loupe.tableDrawnAt));
  await page.waitForSelector('.runs-table[data-loaded="1"]', { timeout: 60_000 });
  const rows = await page.evaluate(() => document.querySelector(".count").textContent);
  if (k === 0) console.log(`runs table: ${rows}`);
  for (const col of ["summary.train/loss.last", "config.lr", "name"]) {
    sorts.push(
      await page.evaluate(async (col) => {
        const t0 = performance.now();
        document.querySelector(`.vt-hcell[data-col="${col}"]`).click();
        // Until the sorted rows are painted: two frames.
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        return performance.now() - t0;
      }, col),
    );
  }
}

console.log("");
console.log(`run page, 50 charts (one ${POINTS.toLocaleString()} points, drawn as ${big.points} M4 points at ${big.width} px):`);
console.log(`  all charts drawn after navigation: ${fmt(drawAll)}   (target ≤ 1500 ms)`);
console.log(`  zoom round trip (mouse up → redrawn at full resolution): ${fmt(zooms)}   (target ≤ 200 ms)`);
console.log(`runs table, ${RUNS.toLocaleString()} runs:`);
console.log(`  first paint after navigation: ${fmt(paints)}   (target ≤ 1000 ms)`);
console.log(`  sort (click → painted): ${fmt(sorts)}   (target ≤ 200 ms)`);

await browser.close();
await server.stop();
const ok = median(drawAll) <= 1500 && median(zooms) <= 200 && median(paints) <= 1000 && median(sorts) <= 200;
process.exit(ok ? 0 : 1);
