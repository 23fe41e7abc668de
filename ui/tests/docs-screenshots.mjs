// The README's screenshots, from a server that has played `loupe demo`:
//   loupe demo --data /tmp/demo && loupe serve --data /tmp/demo --addr 127.0.0.1:7070 &
//   node ui/tests/docs-screenshots.mjs http://127.0.0.1:7070 docs/img
// The run page (rank 5 of the job, hovered so the shared crosshair shows), the
// job view (its ranks unfolded in the runs table) and rank 5's diagnosis tab.
import { join } from "node:path";
import { launch } from "./lib.mjs";

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: node ui/tests/docs-screenshots.mjs BASE_URL OUT_DIR");
  process.exit(2);
}
const RUN = "pretrain-7b.r5";
const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const drawn = (n) => page.waitForFunction((n) => Object.values(window.__loupe.charts).filter((c) => c.drawnAt > 0).length >= n, n, { timeout: 30_000 });

await page.goto(`${base}/r/${RUN}`);
await page.waitForSelector(".job-banner");
await drawn(4);
const over = await page.$(`[data-chart="${RUN}:gpu/1/memory_used_bytes"] .u-over`) ?? (await page.$(".u-over"));
const box = await over.boundingBox();
await page.mouse.move(box.x + box.width * 0.8, box.y + box.height / 2);
await page.waitForTimeout(800);
await page.screenshot({ path: join(out, "run-page.png") });

await page.goto(`${base}/p/demo?job=pretrain-7b`);
await page.waitForSelector('.runs-table[data-loaded="1"] .vt-row');
await page.waitForTimeout(800);
await page.screenshot({ path: join(out, "job.png") });

await page.goto(`${base}/r/${RUN}?tab=diagnosis`);
await page.waitForSelector(".incident");
// The tab, not the run's header: health, then the incidents with their sparklines.
await page.evaluate(() => document.querySelector(".tabs").scrollIntoView({ block: "start" }));
await page.waitForTimeout(1500);
await page.screenshot({ path: join(out, "diagnosis.png") });
await browser.close();
console.log(`wrote run-page.png, job.png, diagnosis.png to ${out}`);
