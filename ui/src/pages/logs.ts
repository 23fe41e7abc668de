// A run's logs: full-text search, level and stream filters, a live tail,
// and "jump to this time" from a chart click (`t` in the URL).

import * as api from "../api";
import type { LogRecord } from "../api";
import { setQuery } from "../router";
import { debounce, fmtTime, h, timeEl } from "../util";

const LEVELS = ["debug", "info", "warning", "error", "critical"];

export interface LogsView {
  el: HTMLElement;
  /** Lines that arrived live (SSE). */
  live(records: LogRecord[]): void;
  destroy(): void;
}

export function logsView(run: api.Run, query: URLSearchParams): LogsView {
  let q = query.get("q") ?? "";
  let level = query.get("level") ?? "";
  let stream = query.get("stream") ?? "";
  let at = query.get("t") ? Number(query.get("t")) : null;
  // A log line named as evidence: marked exactly, even among lines of the same second.
  const atSeq = query.get("seq");
  let follow = run.status === "running" && at === null;
  let cursor: string | null = null;
  let loadingMore = false;
  let abort: AbortController | null = null;
  let lastSeq = -1;

  const searchBox = h("input", { type: "search", placeholder: "Search logs (words, \"a phrase\", prefix*)   ( / )", value: q, "data-search": "", "aria-label": "search logs" });
  const levelBox = h("select", { "aria-label": "minimum level" }, ...["", ...LEVELS].map((l) => h("option", { value: l, selected: l === level }, l ? `≥ ${l}` : "any level")));
  const streamBox = h("select", { "aria-label": "stream" }, ...["", "stdout", "stderr", "app"].map((s) => h("option", { value: s, selected: s === stream }, s || "any stream")));
  const followBox = h("input", { type: "checkbox" });
  followBox.checked = follow;
  const info = h("span.muted");
  const list = h("div.log-lines", { role: "log", "aria-live": "polite" });
  const more = h("button.ghost.more", { hidden: true }, "Load more");
  const sentinel = h("div.sentinel");
  const el = h(
    "div.logs",
    null,
    h("div.toolbar", null, searchBox, levelBox, streamBox, h("label.check", { title: "Keep showing new lines as they arrive" }, followBox, "live tail"), info),
    list,
    more,
    sentinel,
  );

  const line = (r: LogRecord): HTMLElement =>
    h(
      "div.log-line",
      { class: `lv-${r.level} st-${r.stream}`, "data-seq": r.seq, "data-time": r.time },
      h("span.log-time", null, timeEl(r.time, "clock")),
      h("span.log-level", null, r.level),
      h("span.log-stream", null, r.stream),
      h("span.log-text", null, highlight(r.text, q)),
    );

  function params(): api.LogQuery {
    const p: api.LogQuery = { q: q || undefined, level: level || undefined, stream: stream || undefined, limit: 500 };
    if (at !== null) p.from = at - 5;
    else if (follow) p.from = (run.end_time ?? run.heartbeat_time) - 300;
    return p;
  }

  async function load(reset: boolean): Promise<void> {
    if (reset) {
      abort?.abort();
      cursor = null;
      list.replaceChildren();
      lastSeq = -1;
    }
    const ac = new AbortController();
    abort = ac;
    loadingMore = true;
    info.textContent = "loading…";
    try {
      let page = await api.logs(run.id, { ...params(), cursor: cursor ?? undefined }, ac.signal);
      // The tail's window (the last minutes before the run's last sign of
      // life) can miss lines stamped by another clock: then show from the start.
      if (reset && follow && at === null && !page.records.length) page = await api.logs(run.id, { ...params(), from: undefined }, ac.signal);
      if (ac.signal.aborted) return;
      list.append(...page.records.map(line));
      for (const r of page.records) lastSeq = Math.max(lastSeq, r.seq);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      const n = list.childElementCount;
      info.textContent = n ? `${n.toLocaleString()} line${n === 1 ? "" : "s"}${cursor ? "+" : ""}${at !== null ? ` from ${fmtTime(at - 5)}` : ""}` : q ? "no line matches" : "no lines";
      if (reset && at !== null) markAt(at);
      else if (follow && !cursor) list.lastElementChild?.scrollIntoView({ block: "end" });
    } catch (e) {
      if (!ac.signal.aborted) info.textContent = `error: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      loadingMore = false;
    }
  }

  function markAt(t: number): void {
    let target: Element | null = atSeq ? list.querySelector(`[data-seq="${CSS.escape(atSeq)}"]`) : null;
    for (const c of target ? [] : list.children) {
      if (Number((c as HTMLElement).dataset.time) >= t) {
        target = c;
        break;
      }
    }
    target ??= list.lastElementChild;
    if (target) {
      target.classList.add("at");
      target.scrollIntoView({ block: "center" });
    }
  }

  const reload = () => {
    setQuery({ q, level, stream, t: at });
    void load(true);
  };
  searchBox.addEventListener("input", debounce(() => {
    q = searchBox.value.trim();
    reload();
  }, 250));
  levelBox.addEventListener("change", () => {
    level = levelBox.value;
    reload();
  });
  streamBox.addEventListener("change", () => {
    stream = streamBox.value;
    reload();
  });
  followBox.addEventListener("change", () => {
    follow = followBox.checked;
    if (follow) at = null;
    reload();
  });
  more.addEventListener("click", () => void load(false));
  const io = new IntersectionObserver((es) => {
    if (es.some((e) => e.isIntersecting) && cursor && !loadingMore) void load(false);
  });
  io.observe(sentinel);

  void load(true);

  return {
    el,
    live(records) {
      // The tail shows what the filters would: search results are not live.
      if (!follow || q || cursor) return;
      const min = level ? LEVELS.indexOf(level) : 0;
      const fresh = records.filter((r) => r.seq > lastSeq && LEVELS.indexOf(r.level) >= min && (!stream || r.stream === stream));
      if (!fresh.length) return;
      for (const r of fresh) lastSeq = Math.max(lastSeq, r.seq);
      const stick = el.getBoundingClientRect().bottom <= window.innerHeight + 80;
      list.append(...fresh.map(line));
      while (list.childElementCount > 5000) list.firstElementChild?.remove();
      if (stick) list.lastElementChild?.scrollIntoView({ block: "end" });
    },
    destroy() {
      abort?.abort();
      io.disconnect();
    },
  };
}

/** The text with the searched words marked. */
function highlight(text: string, q: string): (string | HTMLElement)[] {
  const words = q
    .replace(/["*]/g, " ")
    .split(/\s+/)
    .filter((w) => w.length > 1)
    .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!words.length) return [text];
  const re = new RegExp(`(${words.join("|")})`, "gi");
  const out: (string | HTMLElement)[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    out.push(text.slice(last, m.index), h("mark", null, m[0]));
    last = (m.index ?? 0) + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}
