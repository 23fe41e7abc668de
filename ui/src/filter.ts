// The runs table's filter box. One line such as
//   status:running tag:baseline config.lr > 1e-4 loss < 2 resnet
// becomes server parameters (status, tag, and the remaining words as `q`)
// and client-side predicates (the comparisons).

import type { Run } from "./api";
import { flatten, runDuration } from "./util";

export type Op = "<" | "<=" | ">" | ">=" | "=" | "!=" | "~";

export interface Comparison {
  field: string;
  op: Op;
  value: string;
}

export interface ParsedFilter {
  status?: string;
  tag?: string;
  q?: string;
  comparisons: Comparison[];
  errors: string[];
}

const CMP = /^([A-Za-z_][\w./\-[\]]*)\s*(<=|>=|!=|==|=|<|>|~)\s*("[^"]*"|'[^']*'|\S+)/;

export function parseFilter(text: string): ParsedFilter {
  const out: ParsedFilter = { comparisons: [], errors: [] };
  const words: string[] = [];
  let s = text.trim();
  while (s.length) {
    const kv = /^(status|tag):(\S+)/i.exec(s);
    if (kv) {
      if (kv[1].toLowerCase() === "status") out.status = kv[2];
      else out.tag = kv[2];
      s = s.slice(kv[0].length).trimStart();
      continue;
    }
    const cmp = CMP.exec(s);
    if (cmp) {
      let value = cmp[3];
      if (/^["'].*["']$/.test(value)) value = value.slice(1, -1);
      out.comparisons.push({ field: cmp[1], op: (cmp[2] === "==" ? "=" : cmp[2]) as Op, value });
      s = s.slice(cmp[0].length).trimStart();
      continue;
    }
    const w = /^(\S+)/.exec(s);
    if (!w) break;
    if (!/^(and|AND|&&|,)$/.test(w[1])) words.push(w[1]);
    s = s.slice(w[0].length).trimStart();
  }
  if (words.length) out.q = words.join(" ");
  return out;
}

/**
 * What a field names in a run: `config.x.y`, `summary.<series>.<stat>`,
 * a series name (`train/loss`, or just `loss` when one series ends so) whose
 * last value is meant, or a run property.
 */
export function fieldValue(run: Run, field: string, flatConfig?: Record<string, unknown>): unknown {
  if (field.startsWith("config.")) {
    const key = field.slice(7);
    return (flatConfig ?? flatten(run.config))[key];
  }
  switch (field) {
    case "name":
      return run.name;
    case "id":
      return run.id;
    case "status":
      return run.status;
    case "host":
      return run.host;
    case "group":
      return run.group;
    case "tags":
    case "tag":
      return run.tags.join(",");
    case "duration":
      return runDuration(run);
    case "health":
      return run.health ?? null;
    case "incidents":
    case "open_incidents":
      return run.open_incidents ?? 0;
    case "start_time":
      return run.start_time;
  }
  let stat: "last" | "min" | "max" = "last";
  let name = field;
  if (field.startsWith("summary.")) name = field.slice(8);
  const m = /^(.*)\.(last|min|max)$/.exec(name);
  if (m && !(name in run.summary)) {
    name = m[1];
    stat = m[2] as "last" | "min" | "max";
  }
  const s = run.summary[name] ?? run.summary[resolveSeries(Object.keys(run.summary), name) ?? ""];
  return s ? s[stat] : undefined;
}

/** `loss` → `train/loss` when exactly one series (preferring `train/`) ends with it. */
export function resolveSeries(names: string[], short: string): string | null {
  if (names.includes(short)) return short;
  const hits = names.filter((n) => n.endsWith(`/${short}`));
  if (hits.length === 1) return hits[0];
  return hits.find((n) => n.startsWith("train/")) ?? hits[0] ?? null;
}

export function matches(run: Run, cmps: Comparison[], flatConfig?: Record<string, unknown>): boolean {
  for (const c of cmps) {
    const v = fieldValue(run, c.field, flatConfig);
    if (v === undefined || v === null) return false;
    const want = Number(c.value);
    const numeric = typeof v === "number" || (typeof v === "boolean" ? false : v !== "" && !Number.isNaN(Number(v)));
    if (c.op === "~") {
      if (!String(v).toLowerCase().includes(c.value.toLowerCase())) return false;
      continue;
    }
    if (numeric && !Number.isNaN(want)) {
      const x = Number(v);
      const ok =
        c.op === "<" ? x < want : c.op === "<=" ? x <= want : c.op === ">" ? x > want : c.op === ">=" ? x >= want : c.op === "=" ? x === want : x !== want;
      if (!ok) return false;
    } else {
      const a = String(v);
      const ok =
        c.op === "=" ? a === c.value : c.op === "!=" ? a !== c.value : c.op === "<" ? a < c.value : c.op === "<=" ? a <= c.value : c.op === ">" ? a > c.value : a >= c.value;
      if (!ok) return false;
    }
  }
  return true;
}
