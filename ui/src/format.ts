// Numbers as a person reads them: about four significant digits, with the
// unit a series' name implies (bytes as KiB/MiB/GiB, rates per second, %,
// °C, durations). Legends, tooltips, axes, tables and diagnosis text all
// format through here, so one series reads the same everywhere.

export type Unit = "bytes" | "bytes/s" | "percent" | "celsius" | "seconds" | "ms" | "watts" | "mhz" | "per_s" | "none";

/**
 * What a series measures, from its name: known metric names first
 * (the agent's `sys/…` and `gpu/…`, the SDK's integrations), then the
 * conventions people name series by (`_bytes`, `_seconds`, `_per_s`).
 * Ordered: the first pattern that matches wins, so rates of bytes are
 * found before bytes.
 */
const UNIT_RULES: [RegExp, Unit][] = [
  [/(bytes?|_bps)(_per_s(ec(ond)?)?|\/s|_rate)$|(read|write|rx|tx|recv|sent)_bytes_per/i, "bytes/s"],
  [/(percent|_pct|utili[sz]ation|[/._]util)$|percent[/._]|cpu_usage$/i, "percent"],
  [/(^|[/._])(mem(ory)?|rss|vram|swap)([/._]|$)|bytes?$|_bytes[/._]|_mib$|_gib$/i, "bytes"],
  [/temp(erature)?(_c)?$/i, "celsius"],
  [/(_ms|_millis(econds)?)$/i, "ms"],
  [/(seconds|_secs?|_time|latency|duration|ttft|tpot|_wait)$/i, "seconds"],
  [/(power|_watts?|_w)$/i, "watts"],
  [/(clock|_mhz|freq(uency)?)$/i, "mhz"],
  [/(_per_s(ec(ond)?)?|\/s|_ps|throughput|per_second)$/i, "per_s"],
];

/** Names that look like a unit but are not (`train/lr_time_decay`) are rare; losses never carry one. */
const NO_UNIT = /(^|[/._])(loss|lr|learning_rate|grad_norm|acc(uracy)?|epoch|perplexity|ppl)([/._]|$)/i;

const unitCache = new Map<string, Unit>();

/** The unit of a series, by its name. `mem` in `gpu/0/memory_used_bytes` gives bytes. */
export function unitOf(name: string): Unit {
  let u = unitCache.get(name);
  if (u !== undefined) return u;
  u = "none";
  if (!NO_UNIT.test(name)) {
    for (const [re, unit] of UNIT_RULES) {
      if (re.test(name)) {
        u = unit;
        break;
      }
    }
  }
  if (u === "bytes" && /(_count|_errors|_pages|_frac(tion)?|ratio)$/i.test(name)) u = "none";
  if (unitCache.size > 5000) unitCache.clear();
  unitCache.set(name, u);
  return u;
}

const SIG = 4;

/** `v` to `sig` significant digits, without trailing zeros or exponent below 1e21. */
function sig(v: number, digits = SIG): string {
  if (v === 0) return "0";
  const r = Number(v.toPrecision(digits));
  const a = Math.abs(r);
  if (a >= 1e-3 && a < 1e21) return String(r);
  return r.toExponential(digits - 1).replace(/\.?0+e/, "e").replace("e+", "e");
}

function nonFinite(v: number): string | null {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "−Inf";
  return null;
}

const SI: [number, string][] = [
  [1e12, "T"],
  [1e9, "G"],
  [1e6, "M"],
  [1e3, "k"],
];

/**
 * A plain number: 4 significant digits; from 10 000 up with k/M/G/T
 * (48035.3663 → 48.04k, 6.008e10 → 60.08G); small ones in exponent form
 * below 0.001 (3e-4). Integers below 10 000 stay exact (step 518).
 */
export function fmtNum(v: number | null | undefined, digits = SIG): string {
  if (v === null || v === undefined) return "";
  const nf = nonFinite(v);
  if (nf) return nf;
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e4) return String(v);
  for (const [f, p] of SI) {
    if (a >= f * 0.99995 && a >= 1e4) {
      return `${sig(v / f, digits)}${p}`;
    }
  }
  return sig(v, digits);
}

const BIN: [number, string][] = [
  [2 ** 50, "PiB"],
  [2 ** 40, "TiB"],
  [2 ** 30, "GiB"],
  [2 ** 20, "MiB"],
  [2 ** 10, "KiB"],
];

export function fmtBytes(v: number, digits = SIG): string {
  const nf = nonFinite(v);
  if (nf) return nf;
  const a = Math.abs(v);
  for (const [f, p] of BIN) if (a >= f) return `${sig(v / f, digits)} ${p}`;
  return `${sig(v, digits)} B`;
}

/** A duration in seconds: 950 µs, 12.5 ms, 3.42 s, 4m 05s, 2h 10m, 3d 4h. */
export function fmtSeconds(v: number, digits = SIG): string {
  const nf = nonFinite(v);
  if (nf) return nf;
  const a = Math.abs(v);
  const sign = v < 0 ? "−" : "";
  if (a === 0) return "0 s";
  if (a < 1e-3) return `${sign}${sig(a * 1e6, digits)} µs`;
  if (a < 1) return `${sign}${sig(a * 1e3, digits)} ms`;
  if (a < 60) return `${sign}${sig(a, digits)} s`;
  const s = Math.round(a);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${sign}${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${sign}${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** A value of a series with `unit`, for legends, tooltips, tables and diagnosis text. */
export function fmtUnit(v: number | null | undefined, unit: Unit, digits = SIG): string {
  if (v === null || v === undefined) return "";
  const nf = nonFinite(v);
  if (nf) return nf;
  switch (unit) {
    case "bytes":
      return fmtBytes(v, digits);
    case "bytes/s":
      return `${fmtBytes(v, digits)}/s`;
    case "percent":
      return `${sig(v, Math.min(digits, 3 + (Math.abs(v) >= 100 ? 1 : 0)))}%`;
    case "celsius":
      return `${sig(v, 3)} °C`;
    case "seconds":
      return fmtSeconds(v, digits);
    case "ms":
      return fmtSeconds(v / 1000, digits);
    case "watts":
      return Math.abs(v) >= 1000 ? `${sig(v / 1000, digits)} kW` : `${sig(v, digits)} W`;
    case "mhz":
      return Math.abs(v) >= 1000 ? `${sig(v / 1000, digits)} GHz` : `${sig(v, digits)} MHz`;
    case "per_s":
      return `${fmtNum(v, digits)}/s`;
    default:
      return fmtNum(v, digits);
  }
}

/** A value of the series `name`. */
export function fmtSeriesValue(v: number | null | undefined, name: string): string {
  return fmtUnit(v, unitOf(name));
}

/** Axis ticks: shorter (3 digits) and with the unit, so a glance reads the scale. */
export function fmtAxis(v: number, unit: Unit): string {
  if (unit === "none") {
    const a = Math.abs(v);
    if (a >= 1e4) return fmtNum(v, 3);
    return fmtNum(Number(v.toPrecision(6)), 6);
  }
  return fmtUnit(v, unit, 3);
}

/** A number written in text with too many digits: `48035.3663`, `6.779e7`, `3.4224626523975448`. */
const LONG_NUMBER = /(?<![\w.])-?(?:\d+\.\d{4,}|\d{5,}\.\d+|\d+(?:\.\d+)?e[+-]?\d+|\d{7,})(?![\w.])/gi;

/**
 * Diagnosis text as a person reads it: every over-long number rounded to
 * four significant digits, in `unit` when the text is about one series
 * (an evidence detail); `/s` after a number stays a rate of that unit.
 */
export function humanizeText(text: string, unit: Unit = "none"): string {
  return text.replace(LONG_NUMBER, (m, offset: number, whole: string) => {
    const v = Number(m);
    if (!Number.isFinite(v)) return m;
    const rate = whole.startsWith("/s", offset + m.length);
    if (unit === "bytes" && rate) return fmtBytes(v);
    return fmtUnit(v, rate && unit === "per_s" ? "none" : unit);
  });
}
