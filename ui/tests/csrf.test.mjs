// A page from another origin, in a real browser, against a default
// `loupe serve` (issue 19): every way a page can send a write without
// asking first (a text/plain or no-cors fetch, a form post, a beacon) and
// the ways it must ask first (JSON, DELETE) change nothing, and it cannot
// read the API. A DNS-rebinding page (the attacker's name resolving to
// 127.0.0.1, simulated with Chromium's --host-resolver-rules) is refused
// by the Host check, reads included. The raw-request versions of these
// cases are in crates/loupe/tests/reliability/cross_site.rs.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { client, launch, startServer } from "./lib.mjs";

const REBIND = "rebind.test";

let server;
let api;
let attacker;
let attackerBase;
let browser;
let page;

/** What a page could change: the runs, the victim's series, rules, silences. */
async function snapshot() {
  const runs = (await api.get("/api/v1/runs")).runs.map((r) => r.id).sort();
  const series = (await api.get("/api/v1/runs/victim/series")).series.map((s) => s.name);
  const rules = await api.get("/api/v1/alerts/rules");
  const silences = await api.get("/api/v1/silences");
  return { runs, series, rules, silences };
}

before(async () => {
  // Each refusal is logged at debug (warnings are paced).
  server = await startServer({ env: { LOUPE_LOG: "warn,loupe_server::guard=debug" } });
  api = client(server.base);
  await api.createRun({ id: "victim", project: "p", name: "victim-run" });
  // The attacker's site: another origin (another port) serving a blank page.
  attacker = createServer((req, res) => {
    res.setHeader("content-type", "text/html");
    res.end("<!doctype html><title>a page from another site</title><body></body>");
  });
  await new Promise((r) => attacker.listen(0, "127.0.0.1", r));
  attackerBase = `http://127.0.0.1:${attacker.address().port}`;
  browser = await launch({ args: [`--host-resolver-rules=MAP ${REBIND} 127.0.0.1`] });
  page = await browser.newPage();
});

after(async () => {
  await browser?.close();
  attacker?.close();
  await server?.stop();
});

describe("a page from another origin", () => {
  test("changes nothing: text/plain and no-cors fetches, a form post, a beacon, JSON, DELETE", async () => {
    const before = await snapshot();
    await page.goto(`${attackerBase}/`);
    const outcomes = await page.evaluate(async (base) => {
      const run = JSON.stringify({ id: "csrf", project: "p" });
      const metrics = JSON.stringify({ series: [{ name: "loss", step: [1], value: [1] }] });
      const rule = JSON.stringify({ name: "pwned", kind: "threshold", expr: "loss > 1", for: "1m" });
      const tries = {
        "fetch text/plain no-cors": () =>
          fetch(`${base}/api/v1/runs`, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body: run }),
        "fetch text/plain cors": () =>
          fetch(`${base}/api/v1/runs`, { method: "POST", headers: { "content-type": "text/plain" }, body: run }),
        "fetch metrics no-cors": () =>
          fetch(`${base}/api/v1/runs/victim/metrics`, { method: "POST", mode: "no-cors", body: metrics }),
        "fetch rule no-cors": () =>
          fetch(`${base}/api/v1/alerts/rules`, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body: rule }),
        "fetch form-urlencoded no-cors": () =>
          fetch(`${base}/api/v1/runs`, { method: "POST", mode: "no-cors", body: new URLSearchParams({ id: "csrf" }) }),
        "fetch JSON (pre-flighted)": () =>
          fetch(`${base}/api/v1/runs`, { method: "POST", headers: { "content-type": "application/json" }, body: run }),
        "fetch DELETE (pre-flighted)": () => fetch(`${base}/api/v1/runs/victim`, { method: "DELETE" }),
        "beacon text/plain": async () => navigator.sendBeacon(`${base}/api/v1/runs`, new Blob([run], { type: "text/plain" })),
        "form text/plain": () =>
          new Promise((resolve) => {
            // The classic: a form whose text/plain body is JSON.
            const frame = document.createElement("iframe");
            frame.name = "sink";
            document.body.append(frame);
            const form = document.createElement("form");
            form.method = "POST";
            form.enctype = "text/plain";
            form.action = `${base}/api/v1/runs`;
            form.target = "sink";
            const input = document.createElement("input");
            input.name = '{"id":"csrf-form","project":"p","x":"';
            input.value = '"}';
            form.append(input);
            document.body.append(form);
            frame.addEventListener("load", () => resolve("loaded"), { once: true });
            form.submit();
            setTimeout(() => resolve("timeout"), 5000);
          }),
        "read the runs (cors)": () => fetch(`${base}/api/v1/runs`).then((r) => r.text()),
      };
      const out = {};
      for (const [name, f] of Object.entries(tries)) {
        try {
          const r = await f();
          out[name] = r instanceof Response ? `response ${r.type} ${r.status}` : `ok ${String(r).slice(0, 80)}`;
        } catch (e) {
          out[name] = `error ${e.name}`;
        }
      }
      // Beacons are sent after the call returns.
      await new Promise((r) => setTimeout(r, 500));
      return out;
    }, server.base);

    if (process.env.LOUPE_UI_VERBOSE) console.log(outcomes, server.stderr());
    // The page could read nothing: no CORS header let an answer through.
    assert.match(outcomes["read the runs (cors)"], /^error/, JSON.stringify(outcomes));
    assert.match(outcomes["fetch JSON (pre-flighted)"], /^error/, JSON.stringify(outcomes));
    assert.match(outcomes["fetch text/plain no-cors"], /^response opaque 0$/, JSON.stringify(outcomes));
    // Nothing changed.
    assert.deepEqual(await snapshot(), before, JSON.stringify(outcomes));
    // The writes reached the server and were refused there, not only
    // blocked by the browser: each is logged.
    const refused = server.stderr().match(/DEBUG[^\n]*refused a state-changing request from another origin/g) ?? [];
    assert.ok(refused.length >= 6, `${refused.length} refusals logged:\n${server.stderr()}\n${JSON.stringify(outcomes)}`);
  });
});

describe("a DNS-rebinding page", () => {
  test("reaches the server under the attacker's name and gets 403 for pages and API alike", async () => {
    const port = new URL(server.base).port;
    const origin = `http://${REBIND}:${port}`;
    for (const path of ["/", "/api/v1/runs", "/api/v1/runs/victim"]) {
      const resp = await page.goto(`${origin}${path}`);
      assert.equal(resp.status(), 403, path);
      const body = JSON.parse(await resp.text());
      assert.equal(body.error.code, "host_not_allowed", path);
    }
    // Same-origin for the browser now: it reads and writes freely, but the
    // server refuses both.
    const got = await page.evaluate(async () => {
      const read = await fetch("/api/v1/runs");
      const write = await fetch("/api/v1/runs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: "rebound", project: "p" }),
      });
      return [read.status, write.status, await read.text()];
    });
    assert.equal(got[0], 403);
    assert.equal(got[1], 403);
    assert.ok(!got[2].includes("victim"), got[2]);
    assert.deepEqual((await api.get("/api/v1/runs")).runs.map((r) => r.id), ["victim"]);
  });

  test("the UI under its own address still works", async () => {
    const resp = await page.goto(`${server.base}/p/p`);
    assert.equal(resp.status(), 200);
    await page.waitForSelector("text=victim-run", { timeout: 15_000 });
  });
});
