// Saves a screenshot of a page of a running Loupe (for the README):
//   node ui/tests/screenshot.mjs URL OUT.png [width] [height]
import { chromium } from "playwright-core";

const [url, out, width = "1400", height = "900"] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node ui/tests/screenshot.mjs URL OUT.png [width] [height]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const page = await browser.newPage({ viewport: { width: Number(width), height: Number(height) } });
await page.goto(url, { waitUntil: "networkidle" });
await page.waitForTimeout(1500);
await page.screenshot({ path: out });
await browser.close();
console.log(`wrote ${out}`);
