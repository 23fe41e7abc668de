// Every link Loupe prints or sends, followed in the browser: the SDK's at
// init and finish, `loupe run`'s at start and end, `loupe show`'s, an alert
// notification's, and the demo's (each incident links to the rank behind
// it). Each must open the run's page (or the project's runs), never
// "Nothing here".

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { client, launch, startServer } from "./lib.mjs";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN = process.env.LOUPE_BIN;

let server;
let api;
let browser;
let page;
let hooks;
let work;
const received = [];

async function freePort() {
  const s = createNetServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A rules file whose notifications go to a receiver in this process and link to `base`. */
async function rulesFile(base) {
  hooks = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push(JSON.parse(body));
      res.end("ok");
    });
  });
  await new Promise((r) => hooks.listen(0, "127.0.0.1", r));
  const file = join(work, "alerts.toml");
  writeFileSync(
    file,
    `[settings]
evaluation_interval = "1s"
base_url = "${base}"

[[channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:${hooks.address().port}/"

[[rules]]
name = "loss-high"
kind = "threshold"
expr = "train/loss > 5"
severity = "critical"
`,
  );
  return file;
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "loupe-links-"));
  const addr = `127.0.0.1:${await freePort()}`;
  server = await startServer({ addr, args: ["--rules", await rulesFile(`http://${addr}`)] });
  api = client(server.base);
  browser = await launch();
  page = await browser.newPage();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  hooks?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Opens `url` and checks that it is the page of run `run`. */
async function assertRunPage(url, run) {
  assert.match(url, /^http:\/\/[^/]+\/r\/[^/?]+(\?.*)?$/);
  await page.goto(url);
  await page.waitForSelector(".run-head", { timeout: 15_000 });
  const crumbs = (await page.textContent(".crumbs")).trim();
  // The last crumb names the run as the UI labels it: its name, or
  // "rank N · id" for a rank of a job.
  // (The demo serves its own runs: only this suite's server is asked for
  // a name, and only when the id is not in the crumb.)
  const last = crumbs.split(" / ").pop();
  const named = async () => (await api.get(`/api/v1/runs/${encodeURIComponent(run)}`)).name;
  assert.ok(last.includes(run) || last === (await named()), `${url}: crumbs ${crumbs}`);
  assert.equal(await page.locator("text=Nothing here").count(), 0, url);
}

function lineOf(text, re, what) {
  const m = re.exec(text);
  assert.ok(m, `${what} not found in:\n${text}`);
  return m;
}

describe("printed and sent links", () => {
  test("the SDK prints the run's page at init and finish", async () => {
    const p = spawnSync("python3", ["-c", 'import loupe\nrun = loupe.init(project="links")\nrun.log({"loss": 1.0})\nloupe.finish()\n'], {
      env: { ...process.env, PYTHONPATH: join(REPO, "python"), LOUPE_SERVER: server.base, LOUPE_DIR: join(work, "sdk") },
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(p.status, 0, p.stderr);
    const started = lineOf(p.stderr, /^loupe: run (\S+) started: (\S+)$/m, "the init link");
    const finished = lineOf(p.stderr, /^loupe: run (\S+) finished: (\S+)$/m, "the finish link");
    assert.equal(started[2], finished[2]);
    await assertRunPage(started[2], started[1]);
  });

  test("loupe run prints the run's page at start and end; loupe show too", async () => {
    const p = spawnSync(BIN, ["run", "--server", server.base, "--no-gpu", "--project", "links", "--dir", join(work, "spool"), "--", "python3", "-c", "print('step 1 loss=0.5')"], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(p.status, 0, p.stderr);
    const start = lineOf(p.stderr, /^loupe run: (http\S+)$/m, "the start link")[1];
    const end = lineOf(p.stderr, /^loupe run: finished (http\S+)$/m, "the end link")[1];
    assert.equal(start, end);
    const run = decodeURIComponent(new URL(start).pathname.split("/").pop());
    await assertRunPage(start, run);
    const show = spawnSync(BIN, ["show", run, "--server", server.base], { encoding: "utf8" });
    assert.equal(show.status, 0, show.stderr);
    await assertRunPage(lineOf(show.stdout, /^\s+url\s+(\S+)$/m, "show's url")[1], run);
  });

  test("an alert notification's links open the run page", async () => {
    await api.createRun({ id: "hot-link", project: "links", name: "hot-link" });
    const now = Date.now() / 1000;
    await api.post("/api/v1/runs/hot-link/metrics", { series: [{ name: "train/loss", step: [0, 1], time: [now - 1, now], value: [1, 9.5] }] });
    const t0 = Date.now();
    while (!received.some((n) => n.status === "firing")) {
      assert.ok(Date.now() - t0 < 20_000, "no notification arrived");
      await new Promise((r) => setTimeout(r, 200));
    }
    const links = received.find((n) => n.status === "firing").alerts[0].links;
    const run = links.find((l) => l.name === "run");
    assert.ok(run, JSON.stringify(links));
    await assertRunPage(run.url, "hot-link");
    // Every other link (an incident's diagnosis tab, a project's runs) opens a real page too.
    for (const l of links.filter((x) => x.name !== "run")) {
      await page.goto(l.url);
      await page.waitForSelector(".crumbs", { timeout: 15_000 });
      assert.equal(await page.locator("text=Nothing here").count(), 0, l.url);
    }
  });

  test("the demo's links open the run page of the rank behind each incident", async () => {
    const child = spawn(BIN, ["demo", "--duration", "40", "--speed", "15", "--follow", "--addr", "127.0.0.1:0"], {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ...process.env, LOUPE_LOG: "warn" },
    });
    const lines = [];
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo did not finish:\n${lines.join("\n")}`)), 150_000);
      createInterface({ input: child.stdout }).on("line", (l) => {
        lines.push(l);
        if (l.startsWith("loupe demo finished")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on("exit", (c) => reject(new Error(`the demo exited (${c}):\n${lines.join("\n")}`)));
    });
    try {
      const see = [...new Set(lines.map((l) => /^\s+see: (\S+)$/.exec(l)?.[1]).filter(Boolean))];
      assert.ok(see.length > 0, lines.join("\n"));
      for (const url of see) {
        assert.match(url, /\/r\/[^/]+$/);
        await assertRunPage(url, decodeURIComponent(url.split("/").pop()));
      }
      // The memory leak's incident names rank 5, not rank 0.
      assert.ok(see.some((u) => u.endsWith("/r/pretrain-7b.r5")), see.join("\n"));
      const open = lineOf(lines.join("\n"), /^Loupe demo: open (\S+) in a browser$/m, "the demo's first link")[1];
      await page.goto(open);
      await page.waitForFunction(() => /pretrain-7b/.test(document.body.textContent), null, { timeout: 15_000 });
      assert.equal(await page.locator("text=Nothing here").count(), 0);
    } finally {
      child.kill("SIGTERM");
    }
  });
});
