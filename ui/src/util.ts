// Small DOM and formatting helpers shared by the pages.

import { fmtNum } from "./format";
import { fmtAgo, fmtDuration, fmtTime, timeEl } from "./time";

export { fmtAgo, fmtDuration, fmtNum, fmtTime, timeEl };

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** Creates an element: `h("a.link", {href}, "text")`; `on*` attributes become listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  spec: K | `${K}.${string}`,
  attrs?: Attrs | null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag as K);
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === "class") {
      el.className = [el.className, String(v)].filter(Boolean).join(" ");
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** Counts and axis labels: 1.2k, 3M, 0.001, 2.5e-7 (three significant digits). */
export function fmtCompact(v: number): string {
  return fmtNum(v, 3);
}

/** A run's duration: to its end, or to now while it is running. */
export function runDuration(r: { start_time: number; end_time: number | null; heartbeat_time: number; status: string }): number {
  const end = r.end_time ?? (r.status === "running" ? Date.now() / 1000 : r.heartbeat_time);
  return end - r.start_time;
}

/** Colours for overlaid runs, told apart in both themes. */
export const PALETTE = [
  "#4c8dff", "#ff7a45", "#2fbf71", "#d94cf0", "#f2c12e", "#25c4d9", "#ff4d6d", "#8f7cff",
  "#a3c14a", "#ff9fd0", "#00a39a", "#c98a3d", "#6e8bb3", "#e35d00", "#7bd389", "#b55bb5",
  "#3aa0ff", "#d4a373", "#9c9c9c", "#5d5fef",
];

export function debounce<A extends unknown[]>(f: (...a: A) => void, ms: number): (...a: A) => void {
  let t: ReturnType<typeof setTimeout> | undefined;
  return (...a: A) => {
    clearTimeout(t);
    t = setTimeout(() => f(...a), ms);
  };
}

/** Flattens nested config objects to `a.b.c` keys. */
export function flatten(v: unknown, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 0 && prefix) out[prefix] = {};
    for (const [k, x] of entries) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = v;
  }
  return out;
}

export function fmtValue(v: unknown): string {
  if (v === undefined) return "";
  if (v === null) return "null";
  if (typeof v === "number") return fmtNum(v);
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** The computed value of a CSS custom property on the root element. */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function statusBadge(status: string): HTMLElement {
  return h("span.badge", { class: `st-${status}`, title: status }, status === "running" ? h("span.live-dot") : null, status);
}
