// Times as the UI shows them, through one helper so a run's header, its
// logs, its incidents, the runs table and the alerts page agree:
//   - always in the browser's time zone (the one the chart axes use);
//   - when something happened (a start, an incident, a log line): the
//     absolute time, `2026-12-07 22:05:01` (a log line, within its run:
//     `22:05:01.123`);
//   - lists that are scanned for recency (runs, alerts, projects): how long
//     ago, `5m 3s ago`;
//   - every shown time carries the full timestamp on hover (milliseconds
//     and the UTC offset), as a <time datetime=…> element.
// No imports: the tests load this module in Node as it is.

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

function valid(unix: number | null | undefined): unix is number {
  return unix !== null && unix !== undefined && Number.isFinite(unix);
}

/** The browser's offset from UTC at `d`, as `UTC+01:00`. */
function utcOffset(d: Date): string {
  const m = -d.getTimezoneOffset();
  const a = Math.abs(m);
  return `UTC${m < 0 ? "−" : "+"}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** `2026-12-07 22:05:01`, in the browser's time zone. */
export function fmtTime(unix: number | null | undefined): string {
  if (!valid(unix)) return "";
  const d = new Date(unix * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The time of day with milliseconds, `22:05:01.123` (log lines). */
export function fmtClock(unix: number | null | undefined): string {
  if (!valid(unix)) return "";
  const d = new Date(Math.floor(unix * 1000));
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** The full timestamp shown on hover: `2026-12-07 22:05:01.123 UTC+01:00`. */
export function fmtFull(unix: number | null | undefined): string {
  if (!valid(unix)) return "";
  const d = new Date(Math.floor(unix * 1000));
  return `${fmtTime(unix)}.${pad(d.getMilliseconds(), 3)} ${utcOffset(d)}`;
}

/** A duration in whole seconds: `45s`, `5m 3s`, `2h 10m`, `3d 4h`. */
export function fmtDuration(seconds: number | null | undefined): string {
  if (!valid(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** How long ago, `5m 3s ago` (`just now` for a time ahead of the clock). */
export function fmtAgo(unix: number | null | undefined, now = Date.now() / 1000): string {
  if (!valid(unix)) return "";
  const s = now - unix;
  if (s < 1) return "just now";
  return `${fmtDuration(s)} ago`;
}

export type TimeStyle = "absolute" | "clock" | "ago";

/** The text of `unix` in `style`. */
export function fmtAt(unix: number | null | undefined, style: TimeStyle): string {
  return style === "clock" ? fmtClock(unix) : style === "ago" ? fmtAgo(unix) : fmtTime(unix);
}

/**
 * A <time> element: the text in `style`, the full timestamp on hover, the
 * ISO form in `datetime` and the Unix seconds in `data-t` (for tests).
 * Empty (no text) when `unix` is missing.
 */
export function timeEl(unix: number | null | undefined, style: TimeStyle = "absolute", prefix = ""): HTMLElement {
  const el = document.createElement("time");
  if (!valid(unix)) return el;
  el.className = `t-${style}`;
  el.dateTime = new Date(Math.floor(unix * 1000)).toISOString();
  el.title = fmtFull(unix);
  el.dataset.t = String(unix);
  el.textContent = prefix + fmtAt(unix, style);
  return el;
}
