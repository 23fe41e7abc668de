// Shared by the end-to-end tests and the bench: a real `loupe serve` on a
// temporary data directory, seeding through the public HTTP API, and a
// headless Chromium driven by playwright-core.

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

export const SCREENSHOTS = process.env.LOUPE_SCREENSHOTS ?? new URL("./screenshots/", import.meta.url).pathname;

/**
 * Starts `loupe serve --addr 127.0.0.1:0` (or `addr`) and resolves once it
 * says where it listens; `args` are added to the command line (e.g.
 * `["--rules", file]`); `env` adds to its environment.
 */
export async function startServer({ args = [], addr = "127.0.0.1:0", env = {} } = {}) {
  const bin = process.env.LOUPE_BIN;
  if (!bin) throw new Error("LOUPE_BIN must point at the built loupe binary (target/release/loupe)");
  const data = mkdtempSync(join(tmpdir(), "loupe-ui-"));
  const child = spawn(bin, ["serve", "--addr", addr, "--data", data, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, LOUPE_LOG: process.env.LOUPE_LOG ?? "warn", ...env },
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
    if (process.env.LOUPE_UI_VERBOSE) process.stderr.write(d);
  });
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`loupe serve did not start:\n${stderr}`)), 30_000);
    child.on("exit", (code) => reject(new Error(`loupe serve exited (${code}):\n${stderr}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = /^loupe serve listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return {
    base,
    /** What the server has logged so far (at LOUPE_LOG, `warn` by default). */
    stderr: () => stderr,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
      rmSync(data, { recursive: true, force: true });
    },
  };
}

export function client(base) {
  async function call(method, path, body) {
    const res = await fetch(base + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  }
  return {
    get: (p) => call("GET", p),
    post: (p, b) => call("POST", p, b),
    del: (p) => call("DELETE", p),
    patch: (p, b) => call("PATCH", p, b),
    createRun: (run) => call("POST", "/api/v1/runs", run),
    /** Sends one series in chunks of `chunk` points; `value(i)` may return NaN/±Inf. */
    async series(run, name, n, value, { chunk = 500_000, t0 = 1_700_000_000, dt = 0.01 } = {}) {
      for (let s = 0; s < n; s += chunk) {
        const e = Math.min(n, s + chunk);
        // Built as text: a 1M-element JSON.stringify of objects is slow and NaN needs quoting.
        const steps = [];
        const times = [];
        const values = [];
        for (let i = s; i < e; i++) {
          steps.push(i);
          times.push((t0 + i * dt).toFixed(3));
          const v = value(i);
          values.push(Number.isNaN(v) ? '"NaN"' : v === Infinity ? '"Infinity"' : v === -Infinity ? '"-Infinity"' : String(Math.fround(v)));
        }
        const body = `{"series":[{"name":${JSON.stringify(name)},"step":[${steps.join(",")}],"time":[${times.join(",")}],"value":[${values.join(",")}]}]}`;
        await call("POST", `/api/v1/runs/${encodeURIComponent(run)}/metrics`, body);
      }
    },
    /** Several short series of one run in one request. */
    async many(run, names, n, value, { t0 = 1_700_000_000, dt = 1 } = {}) {
      const series = names.map((name, k) => ({
        name,
        step: Array.from({ length: n }, (_, i) => i),
        time: Array.from({ length: n }, (_, i) => t0 + i * dt),
        value: Array.from({ length: n }, (_, i) => value(k, i)),
      }));
      await call("POST", `/api/v1/runs/${encodeURIComponent(run)}/metrics`, { series });
    },
    logs: (run, records) => call("POST", `/api/v1/runs/${encodeURIComponent(run)}/logs`, { records }),
  };
}

/** Waits until the server's summaries (flushed once a second) show `series` for every run. */
export async function waitSummaries(api, project, series, count) {
  for (let i = 0; i < 100; i++) {
    const r = await api.get(`/api/v1/runs?project=${project}&limit=1000`);
    if (r.runs.filter((x) => x.summary[series]).length >= count) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`summaries of ${series} did not appear`);
}

/** Headless Chromium; `args` are added to its command line. */
export async function launch({ args = [] } = {}) {
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  return chromium.launch({
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage", ...args],
  });
}

export function screenshotDir() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return SCREENSHOTS;
}

/** A deterministic pseudo-random stream, so the seeded data is the same every run. */
export function rng(seed = 1) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
