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

/** Where a filter does not parse: the character offset, the length of the bad part, why. */
export interface FilterError {
  at: number;
  length: number;
  message: string;
}

export interface ParsedFilter {
  status?: string;
  tag?: string;
  q?: string;
  comparisons: Comparison[];
  /** What could not be understood; the rest of the filter still applies. */
  errors: FilterError[];
}

export const STATUSES = ["running", "finished", "failed", "crashed", "killed", "lost"];
const OPERATOR = /^(<=|>=|!=|==|=|<|>|~)/;
/** Fields whose values are text, where `<` and `>` compare alphabetically. */
const TEXT_FIELDS = /^(name|id|status|host|group|tags?|config\..*)$/;

const CMP = /^([A-Za-z_][\w./\-[\]]*)\s*(<=|>=|!=|==|=|<|>|~)\s*("[^"]*"|'[^']*'|\S+)/;

export function parseFilter(text: string): ParsedFilter {
  const out: ParsedFilter = { comparisons: [], errors: [] };
  const words: string[] = [];
  let s = text.trimStart();
  const err = (length: number, message: string) => out.errors.push({ at: text.length - s.length, length: Math.max(1, length), message });
  while (s.trim().length) {
    const kv = /^(status|tag):(\S*)/i.exec(s);
    if (kv) {
      const key = kv[1].toLowerCase();
      if (!kv[2]) err(kv[0].length, `${key}: needs a value, e.g. ${key === "status" ? "status:failed" : "tag:baseline"}`);
      else if (key === "status" && !STATUSES.includes(kv[2].toLowerCase())) err(kv[0].length, `unknown status "${kv[2]}": one of ${STATUSES.join(", ")}`);
      else if (key === "status") out.status = kv[2].toLowerCase();
      else out.tag = kv[2];
      s = s.slice(kv[0].length).trimStart();
      continue;
    }
    if (/^["']/.test(s) && !new RegExp(`^${s[0]}[^${s[0]}]*${s[0]}`).test(s)) {
      err(s.length, `unclosed ${s[0]}`);
      break;
    }
    const cmp = CMP.exec(s);
    if (cmp) {
      let value = cmp[3];
      if (/^["']/.test(value) && !/^(["']).*\1$/.test(value)) {
        err(s.length, `unclosed ${value[0]} in the value of ${cmp[1]}`);
        break;
      }
      if (/^["'].*["']$/.test(value)) value = value.slice(1, -1);
      const op = (cmp[2] === "==" ? "=" : cmp[2]) as Op;
      if (OPERATOR.test(value)) err(cmp[0].length, `"${cmp[2]}${value.match(OPERATOR)![0]}" is not an operator: use <, <=, >, >=, =, != or ~`);
      else if ("<>".includes(op[0]) && Number.isNaN(Number(value)) && !TEXT_FIELDS.test(cmp[1])) err(cmp[0].length, `${cmp[1]} ${cmp[2]} ${value}: "${value}" is not a number (use = or ~ to match text)`);
      else out.comparisons.push({ field: cmp[1], op, value });
      s = s.slice(cmp[0].length).trimStart();
      continue;
    }
    const dangling = /^(\S+)\s*(<=|>=|!=|==|=|<|>|~)\s*$/.exec(s) ?? /^(<=|>=|!=|==|=|<|>|~)(\s|$)/.exec(s);
    if (dangling) {
      err(s.trimEnd().length, dangling[2] !== undefined && dangling[1] && !OPERATOR.test(dangling[1]) ? `${dangling[1]} ${dangling[2]} needs a value after it, e.g. ${dangling[1]} ${dangling[2]} 2` : `"${dangling[1]}" needs a field before it and a value after it, e.g. loss < 2`);
      break;
    }
    const w = /^(\S+)/.exec(s);
    if (!w) break;
    if (OPERATOR.test(w[1]) && w[1].length <= 2) {
      err(w[1].length, `"${w[1]}" needs a field before it and a value after it, e.g. loss < 2`);
    } else if (!/^(and|AND|&&|,)$/.test(w[1])) words.push(w[1]);
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
    case "total_incidents":
      return run.total_incidents ?? run.open_incidents ?? 0;
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
