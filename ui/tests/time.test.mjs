// The UI's one time formatter (src/time.ts), in Node: the zone is the
// browser's (here a quarter-hour-offset zone no machine runs in, so a UTC
// or server-side formatter would not pass), absolute and clock forms agree
// with the full timestamp shown on hover.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";

process.env.TZ = "Asia/Kathmandu";
const here = dirname(fileURLToPath(import.meta.url));
const js = ts.transpileModule(readFileSync(join(here, "../src/time.ts"), "utf8"), {
  compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
}).outputText;
const file = join(mkdtempSync(join(tmpdir(), "loupe-time-")), "time.mjs");
writeFileSync(file, js);
const time = await import(pathToFileURL(file).href);

/** The wall-clock parts of `unix` in Kathmandu, by Intl (an independent formatter). */
function kathmandu(unix) {
  const ms = Math.floor(unix * 1000);
  const p = Object.fromEntries(
    new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Kathmandu", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" })
      .formatToParts(new Date(ms))
      .map((x) => [x.type, x.value]),
  );
  return { date: `${p.year}-${p.month}-${p.day}`, clock: `${p.hour}:${p.minute}:${p.second}`, ms: String(ms % 1000).padStart(3, "0") };
}

const cases = [1_700_000_000, 1_700_000_150.5, 1_700_006_543.21, 1_765_148_701.999, 946_684_799.25];

test("absolute, clock and hover forms are the browser zone's wall clock", () => {
  for (const t of cases) {
    const k = kathmandu(t);
    assert.equal(time.fmtTime(t), `${k.date} ${k.clock}`, `fmtTime(${t})`);
    assert.equal(time.fmtClock(t), `${k.clock}.${k.ms}`, `fmtClock(${t})`);
    assert.equal(time.fmtFull(t), `${k.date} ${k.clock}.${k.ms} UTC+05:45`, `fmtFull(${t})`);
    // The shorter forms are prefixes/parts of what the hover shows.
    assert.ok(time.fmtFull(t).startsWith(time.fmtTime(t)));
    assert.ok(time.fmtFull(t).includes(time.fmtClock(t)));
  }
});

test("relative times and durations", () => {
  const now = 1_700_000_000;
  assert.equal(time.fmtAgo(now - 5, now), "5s ago");
  assert.equal(time.fmtAgo(now - 303, now), "5m 3s ago");
  assert.equal(time.fmtAgo(now - 7800, now), "2h 10m ago");
  assert.equal(time.fmtAgo(now + 10, now), "just now");
  assert.equal(time.fmtAt(now, "absolute"), time.fmtTime(now));
  assert.equal(time.fmtAt(now, "clock"), time.fmtClock(now));
  for (const bad of [null, undefined, NaN, Infinity]) {
    assert.equal(time.fmtTime(bad), "");
    assert.equal(time.fmtFull(bad), "");
    assert.equal(time.fmtAgo(bad), "");
  }
});
