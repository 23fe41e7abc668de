// A run: its header, and tabs for charts (every series, grouped by prefix),
// logs, system (host and GPU), config, and diagnosis.

import * as api from "../api";
import type { Incident, Run, SeriesInfo } from "../api";
import { Chart, lazy, type ChartLine, type Span, type XMode } from "../chart";
import { pageKeys } from "../keys";
import { navigate, paths, setQuery, type Route } from "../router";
import { announceCrumbs, announceProject, THEME_EVENT } from "../shell";
import { append, debounce, flatten, fmtDuration, fmtValue, h, PALETTE, runDuration, statusBadge, timeEl } from "../util";
import { diagnosisView, jsonTree } from "./diagnosis";
import { notFound } from "./empty";
import { hasFailure, jobBanner, summarizeJob, type JobSummary } from "./job";
import { logsView, type LogsView } from "./logs";

const TABS = ["charts", "logs", "system", "config", "diagnosis"] as const;
type Tab = (typeof TABS)[number];

/** `train/loss` → `train`; `gpu/0/util` → `gpu`; `loss` → `other`. */
export function groupOf(name: string): string {
  const i = name.indexOf("/");
  return i > 0 ? name.slice(0, i) : "other";
}

export function groupRank(g: string): number {
  const order = ["train", "eval", "val", "test", "other"];
  const i = order.indexOf(g);
  if (i >= 0) return i;
  if (g === "sys") return 90;
  if (g.startsWith("gpu")) return 91;
  return 50;
}

/** Which device a system series is about: `gpu/3/util` → `GPU 3`. */
function deviceOf(name: string, labels?: Record<string, string>): string {
  const l = labels ?? {};
  const dev = l.gpu ?? l.device ?? l.rank;
  if (dev !== undefined) return `${l.gpu !== undefined ? "GPU" : l.device !== undefined ? "device" : "rank"} ${dev}`;
  const m = /^(gpu)[/_]?(\d+)[/_]/.exec(name) ?? /^gpu\/[^/]*?(\d+)\//.exec(name);
  if (m) return `GPU ${m[2] ?? m[1]}`;
  if (name.startsWith("gpu")) return "GPU";
  return "host";
}

/** The series an incident's evidence and anomalies touch. */
function seriesOfIncident(inc: Incident): Set<string> {
  const out = new Set<string>();
  for (const a of inc.anomalies) if (a.series) out.add(a.series);
  for (const c of inc.causes) for (const e of c.evidence) if (e.kind === "series" && e.series) out.add(e.series);
  return out;
}

/**
 * The spans a chart of `series` draws: an incident's span (labelled, linking
 * to it) on the charts its evidence touches, and the anomalies of that series
 * in this run. Without a series (a view of everything), every incident.
 */
export function spansOf(incidents: Incident[] | null, series?: string, run?: string): Span[] {
  const out: Span[] = [];
  for (const inc of incidents ?? []) {
    if (series === undefined || seriesOfIncident(inc).has(series)) {
      out.push({
        incident: inc.id,
        href: paths.run(run ?? inc.run ?? "", { tab: "diagnosis", inc: inc.id }),
        start_step: inc.start_step,
        end_step: inc.end_step,
        start_time: inc.start_time,
        end_time: inc.end_time,
        severity: inc.severity,
        title: inc.title,
      });
    }
    for (const a of inc.anomalies) {
      if (series && a.series !== series) continue;
      if (run && a.run && a.run !== run) continue;
      out.push({ start_step: a.start_step, end_step: a.end_step, start_time: a.start_time, end_time: a.end_time, severity: "anomaly", title: `${a.detector}: ${a.detail}` });
    }
  }
  return out;
}

export function runPage(root: HTMLElement, route: Route): () => void {
  const id = route.arg;
  const q = route.query;
  let tab: Tab = (TABS as readonly string[]).includes(q.get("tab") ?? "") ? (q.get("tab") as Tab) : "charts";
  let xMode: XMode = (["step", "time", "rel"] as const).find((m) => m === q.get("x")) ?? "step";
  let smoothing = Math.min(0.99, Math.max(0, Number(q.get("smooth") ?? 0) || 0));
  let logScale = q.get("log") === "1";
  let seriesFilter = q.get("s") ?? "";
  // One zoomed chart travels in the URL: `z=<series>:<from>:<to>`.
  const zParam = /^(.*):(-?[\d.e+-]+):(-?[\d.e+-]+)$/.exec(q.get("z") ?? "");
  // `zall=1`: one zoom for every chart of the page (the z range applies to all).
  let zoomAll = q.get("zall") === "1";
  const zoomOf = (name: string): [number, number] | null => (zParam && (zoomAll || zParam[1] === name) ? [Number(zParam[2]), Number(zParam[3])] : null);
  const markStep = q.get("mark") !== null && q.get("mark") !== "" && Number.isFinite(Number(q.get("mark"))) ? Number(q.get("mark")) : null;
  let job: JobSummary | null = null;
  let zoomSpreading = false;
  let run: Run | null = null;
  let series: SeriesInfo[] = [];
  let incidents: Incident[] | null = null;
  let health: api.Health | null = null;
  const charts = new Map<string, Chart>();
  let logs: LogsView | null = null;
  let observer = lazy();
  const stops: (() => void)[] = [];

  const header = h("div.run-head", null, h("div.muted", null, "Loading run…"));
  const tabBar = h("nav.tabs", { role: "tablist" });
  const body = h("div.tab-body");
  root.append(header, tabBar, body);

  function renderTabs(): void {
    tabBar.replaceChildren(
      ...TABS.map((t, i) => {
        const count = t === "diagnosis" && incidents?.length ? ` (${incidents.filter((x) => x.state === "open").length || incidents.length})` : "";
        return h("a.tab", { href: paths.run(id, { ...Object.fromEntries(new URLSearchParams(location.search)), tab: t }), role: "tab", "aria-selected": String(t === tab), title: `${t} (${i + 1})`, "data-tab": t }, t + count);
      }),
    );
    tabBar.querySelectorAll("a").forEach((a) =>
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        show((a as HTMLElement).dataset.tab as Tab);
      }),
    );
  }

  function renderHeader(r: Run): void {
    const f = r.failure;
    header.replaceChildren();
    append(header, [
      h(
        "div.run-title",
        null,
        statusBadge(r.status),
        h("h1", null, r.name),
        h("code.muted", { title: "run id" }, r.id),
        r.health !== undefined && r.health !== null ? h("span.health", { class: `h${Math.min(3, Math.floor(r.health / 25))}`, title: "health" }, `health ${Math.round(r.health)}`) : null,
      ),
      h(
        "dl.facts",
        null,
        fact("project", h("a", { href: paths.runs(r.project) }, r.project)),
        fact("started", timeEl(r.start_time)),
        fact("duration", fmtDuration(runDuration(r))),
        r.host ? fact("host", r.host + (r.world_size && r.world_size > 1 ? ` · rank ${r.rank ?? "?"} of ${r.world_size}` : "")) : null,
        r.group ? fact("job", h("a", { href: paths.runs(r.project, { job: r.group }), title: "every rank of this job" }, r.group)) : null,
        r.git_commit ? fact("git", h("code", null, r.git_commit.slice(0, 12) + (r.git_dirty ? " (dirty)" : ""))) : null,
        r.exit_code !== null ? fact("exit", String(r.exit_code)) : null,
        r.tags.length ? fact("tags", h("span", null, ...r.tags.map((t) => h("span.tag", null, t)))) : null,
        r.resumes ? fact("resumed", `${r.resumes}×`) : null,
      ),
      r.command ? h("div.cmd", null, h("code", { title: r.cwd ? `in ${r.cwd}` : "" }, r.command)) : null,
      configLine(r.config),
      job ? jobBanner(r, job) : null,
      f && hasFailure(r)
        ? h(
            "details.failure",
            { open: true },
            h("summary", null, h("b", null, f.exception_type ?? (f.signal ? `signal ${f.signal}` : "failure")), f.message ? `: ${f.message}` : ""),
            f.traceback ? h("pre", null, f.traceback) : null,
            f.stderr_tail?.length ? h("pre", null, f.stderr_tail.join("\n")) : null,
          )
        : null,
    ]);
  }

  /** The config's scalar values on one line; the config tab has the rest. */
  function configLine(config: unknown): HTMLElement | null {
    const flat = Object.entries(flatten(config)).filter(([, v]) => v === null || typeof v !== "object");
    if (!flat.length) return null;
    const shown = flat.slice(0, 12);
    return h(
      "div.cfg-line",
      { title: "config (see the config tab)" },
      ...shown.map(([k, v]) => h("span.cfg", null, h("span.muted", null, `${k}=`), fmtValue(v))),
      flat.length > shown.length ? h("a", { href: paths.run(id, { tab: "config" }) }, `+${flat.length - shown.length} more`) : null,
    );
  }

  function fact(k: string, v: Node | string): HTMLElement {
    return h("div.fact", null, h("dt", null, k), h("dd", null, v));
  }

  function destroyCharts(): void {
    for (const c of charts.values()) c.destroy();
    charts.clear();
    observer.disconnect();
    observer = lazy();
  }

  function onPick(x: number, mode: XMode, line: ChartLine): void {
    const go = (t: number) => navigate(paths.run(id, { tab: "logs", t: t.toFixed(3) }));
    if (mode === "time") go(x);
    else if (mode === "rel") go(x + (line.offset ?? 0));
    else if (line.run) {
      // A step's time: one raw point at that step.
      void api.seriesData(line.run, line.name, { x: "step", from: x, to: x, limit: 1 }).then((d) => {
        const ns = d.time_ns?.[0];
        if (ns !== undefined) go(ns / 1e9);
      });
    }
  }

  /** With "zoom all charts" on, one chart's zoom (or reset) is every chart's. */
  function spreadZoom(from: Chart, r: [number, number] | null): void {
    if (!zoomAll || zoomSpreading) return;
    zoomSpreading = true;
    try {
      for (const c of charts.values()) if (c !== from && c.xMode === from.xMode) c.setZoom(r);
    } finally {
      zoomSpreading = false;
    }
  }

  function chartFor(name: string, host?: { project: string; labels: Record<string, string> }, label?: string, baseRange?: [number, number], againstTime = false): Chart {
    const key = host ? `host:${name}:${JSON.stringify(host.labels)}` : againstTime ? `time:${name}` : name;
    const mode: XMode = (host || againstTime) && xMode !== "time" ? "time" : xMode;
    const c: Chart = new Chart({
      id: `${id}:${key}`,
      title: label ?? name,
      lines: [{ label: label ?? name, color: PALETTE[0], run: host ? undefined : id, name, host, offset: run?.start_time ?? 0 }],
      xMode: mode,
      log: logScale,
      smoothing,
      spans: spansOf(incidents, name, id),
      onPick,
      baseRange,
      syncKey: `run:${id}`,
      mark: zParam && zParam[1] === name ? markStep : null,
      zoom: host || againstTime ? null : zoomOf(name),
      onZoom:
        host || againstTime
          ? undefined
          : (r) => {
              setQuery({ z: r ? `${name}:${+r[0].toPrecision(12)}:${+r[1].toPrecision(12)}` : null, mark: null });
              spreadZoom(c, r);
            },
    });
    charts.set(key, c);
    observer.observe(c.el, () => void c.load());
    return c;
  }

  function chartGrid(names: SeriesInfo[], grouping: (s: SeriesInfo) => string, rank: (g: string) => number, hostOf?: (s: SeriesInfo) => { project: string; labels: Record<string, string> } | undefined, baseRange?: [number, number], againstTime = false): HTMLElement {
    const groups = new Map<string, SeriesInfo[]>();
    for (const s of names) {
      const g = grouping(s);
      let list = groups.get(g);
      if (!list) groups.set(g, (list = []));
      list.push(s);
    }
    const ordered = [...groups.entries()].sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]));
    return h(
      "div.groups",
      null,
      ...ordered.map(([g, list]) =>
        h(
          "details.group",
          { open: true, "data-group": g },
          h("summary", null, h("span.group-name", null, g), h("span.muted", null, ` ${list.length}`)),
          h("div.chart-grid", null, ...list.sort((a, b) => a.name.localeCompare(b.name)).map((s) => chartFor(s.name, hostOf?.(s), hostOf?.(s) ? `${s.name}${s.labels ? " " + Object.entries(s.labels).filter(([k]) => k !== "host").map(([k, v]) => `${k}=${v}`).join(" ") : ""}` : undefined, baseRange, againstTime).el)),
        ),
      ),
    );
  }

  function chartsTab(): HTMLElement {
    const xBox = h("select", { "aria-label": "x axis", title: "x axis" }, ...(["step", "time", "rel"] as const).map((m) => h("option", { value: m, selected: m === xMode }, m === "rel" ? "relative time" : m)));
    const smoothBox = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: String(smoothing), "aria-label": "smoothing" });
    const smoothVal = h("span.muted.num", null, smoothing.toFixed(2));
    const logBox = h("input", { type: "checkbox", "aria-label": "log scale" });
    logBox.checked = logScale;
    const filterBox = h("input", { type: "search", placeholder: "Filter charts   ( / )", value: seriesFilter, "data-search": "", "aria-label": "filter charts" });
    const zoomAllBox = h("input", { type: "checkbox", "aria-label": "zoom all charts together" });
    zoomAllBox.checked = zoomAll;
    zoomAllBox.addEventListener("change", () => {
      zoomAll = zoomAllBox.checked;
      setQuery({ zall: zoomAll ? 1 : null });
      // Turning it on applies the zoom already shown (if any) to every chart.
      const zoomed = [...charts.values()].find((c) => c.zoomed);
      if (zoomAll && zoomed) spreadZoom(zoomed, zoomed.zoomed);
    });
    const grid = h("div");
    const draw = () => {
      destroyCharts();
      const re = seriesFilter.toLowerCase();
      const shown = series.filter((s) => !re || s.name.toLowerCase().includes(re));
      grid.replaceChildren(
        shown.length ? chartGrid(shown, (s) => groupOf(s.name), groupRank) : h("div.empty.muted", null, series.length ? "No chart matches the filter." : "This run has no series yet."),
      );
    };
    xBox.addEventListener("change", () => {
      xMode = xBox.value as XMode;
      setQuery({ x: xMode === "step" ? null : xMode });
      for (const c of charts.values()) c.setView({ xMode });
    });
    smoothBox.addEventListener("input", () => {
      smoothing = Number(smoothBox.value);
      smoothVal.textContent = smoothing.toFixed(2);
      applySmooth();
    });
    const applySmooth = debounce(() => {
      setQuery({ smooth: smoothing || null });
      for (const c of charts.values()) c.setView({ smoothing });
    }, 60);
    logBox.addEventListener("change", () => {
      logScale = logBox.checked;
      setQuery({ log: logScale ? 1 : null });
      for (const c of charts.values()) c.setView({ log: logScale });
    });
    filterBox.addEventListener("input", debounce(() => {
      seriesFilter = filterBox.value.trim();
      setQuery({ s: seriesFilter });
      draw();
    }, 200));
    draw();
    return h(
      "div",
      null,
      h(
        "div.toolbar",
        null,
        filterBox,
        h("label", null, "x ", xBox),
        h("label.smooth", { title: "TensorBoard's debiased exponential moving average; the raw line stays faint behind" }, "smoothing ", smoothBox, smoothVal),
        h("label.check", null, logBox, "log y"),
        h("label.check", { title: "Zooming one chart zooms every chart of the page to the same range" }, zoomAllBox, "zoom all charts"),
        h("span.muted.hint", null, "drag to zoom · double-click to reset · click a point for its logs · hover is shared by all charts"),
      ),
      grid,
    );
  }

  async function systemTab(): Promise<HTMLElement> {
    const r = run!;
    const own = series.filter((s) => s.name.startsWith("sys/") || s.name.startsWith("gpu"));
    let hostSeries: SeriesInfo[] = [];
    if (r.host) {
      try {
        hostSeries = await api.hostSeries(r.project, { host: r.host });
      } catch {
        hostSeries = [];
      }
    }
    if (!own.length && !hostSeries.length) {
      return h("div.empty", null, h("h3", null, "No system metrics"), h("p.muted", null, "Neither this run nor its host (", r.host ?? "unknown", ") has CPU, memory or GPU series. Run ", h("code", null, "loupe agent"), " on the host, or log ", h("code", null, "sys/…"), " and ", h("code", null, "gpu/…"), " series."));
    }
    const end = r.end_time ?? (r.status === "running" ? Date.now() / 1000 : r.heartbeat_time);
    const win: [number, number] = [r.start_time - 60, end + 60];
    const parts: HTMLElement[] = [];
    if (r.group) {
      // The other ranks of a distributed job: each one's system tab is a click away.
      try {
        const page = await api.get<{ runs: Run[] }>("/runs", { project: r.project, q: r.group, limit: 1000 });
        const ranks = page.runs.filter((x) => x.group === r.group).sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0));
        if (ranks.length > 1)
          parts.push(
            h(
              "div.ranks",
              null,
              h("span.muted", null, `${r.group}: `),
              ...ranks.map((x) => (x.id === r.id ? h("b", null, `rank ${x.rank ?? "?"}`) : h("a", { href: paths.run(x.id, { tab: "system" }) }, `rank ${x.rank ?? "?"}`))),
            ),
          );
      } catch {
        // Without the list, this rank's own charts still show.
      }
    }
    // Host and GPU metrics read against wall-clock time, like the host's own series below.
    if (own.length) parts.push(h("h3", null, `Logged by the run${r.rank !== null ? ` (rank ${r.rank})` : ""}`, h("span.muted", null, " · against wall-clock time")), chartGrid(own, (s) => deviceOf(s.name), (g) => (g === "host" ? 0 : 1), undefined, undefined, true));
    if (hostSeries.length)
      parts.push(
        h("h3", null, `Host ${r.host} during the run`),
        chartGrid(hostSeries, (s) => deviceOf(s.name, s.labels ?? undefined), (g) => (g === "host" ? 0 : 1), (s) => ({ project: r.project, labels: s.labels ?? {} }), win),
      );
    return h("div.system", null, ...parts);
  }

  function show(t: Tab): void {
    tab = t;
    const cur = new URLSearchParams(location.search);
    setQuery({ tab: t === "charts" ? null : t, t: t === "logs" ? cur.get("t") : null, seq: t === "logs" ? cur.get("seq") : null, inc: t === "diagnosis" ? cur.get("inc") : null });
    renderTabs();
    destroyCharts();
    logs?.destroy();
    logs = null;
    body.replaceChildren();
    if (!run) return;
    switch (t) {
      case "charts":
        body.append(chartsTab());
        break;
      case "logs":
        logs = logsView(run, new URLSearchParams(location.search));
        body.append(logs.el);
        break;
      case "system": {
        const holder = h("div.muted", null, "Loading…");
        body.append(holder);
        void systemTab().then((el) => tab === "system" && holder.replaceWith(el));
        break;
      }
      case "config":
        body.append(
          h(
            "div.config",
            null,
            run.config && typeof run.config === "object" && Object.keys(run.config as object).length ? jsonTree(run.config) : h("p.muted", null, "No config was logged."),
            run.notes ? h("div.notes", null, h("h3", null, "Notes"), h("p", null, run.notes)) : null,
          ),
        );
        break;
      case "diagnosis":
        body.append(diagnosisView(incidents, health, { run: run, ranks: job?.ranks ?? [run], focus: new URLSearchParams(location.search).get("inc") }));
        break;
    }
  }

  /** A rank's job: its other ranks, for the banner and the diagnosis tab's rank names. */
  async function loadJob(r: Run): Promise<void> {
    try {
      const page = await api.get<{ runs: Run[] }>("/runs", { project: r.project, q: r.group, limit: 1000 });
      const ranks = page.runs.filter((x) => x.group === r.group);
      if (ranks.length < 2 || !run) return;
      job = summarizeJob(r.group ?? "", ranks);
      renderHeader(run);
      if (tab === "diagnosis") show("diagnosis");
    } catch {
      // Without the job, the rank's own page still shows.
    }
  }

  pageKeys(Object.fromEntries(TABS.map((t, i) => [String(i + 1), () => show(t)])));

  const onTheme = () => {
    if (tab === "charts" || tab === "system") show(tab);
  };
  window.addEventListener(THEME_EVENT, onTheme);
  stops.push(() => window.removeEventListener(THEME_EVENT, onTheme));

  void (async () => {
    try {
      const [r, s] = await Promise.all([api.run(id), api.runSeries(id)]);
      run = r;
      series = s;
    } catch (e) {
      tabBar.remove();
      if (e instanceof api.ApiError && e.status === 404) {
        announceCrumbs([{ label: "run not found" }]);
        header.replaceChildren(notFound("run", id));
      } else {
        header.replaceChildren(h("div.error", null, `Could not load the run: ${e instanceof Error ? e.message : String(e)}`, " ", h("a", { href: "/" }, "Back to projects")));
      }
      return;
    }
    announceProject(run.project);
    announceCrumbs(runCrumbs(run));
    renderHeader(run);
    show(tab);
    if (run.group) void loadJob(run);
    // Diagnosis arrives after the charts start: it is not on their critical path.
    void Promise.all([api.runIncidents(id).catch(() => null), api.runHealth(id).catch(() => null)]).then(([inc, hl]) => {
      incidents = inc;
      health = hl;
      renderTabs();
      for (const [name, c] of charts) c.setSpans(spansOf(incidents, c.seriesName ?? name, id));
      if (tab === "diagnosis") show("diagnosis");
    });
    if (run.status === "running") {
      const known = new Set(series.map((x) => x.name));
      stops.push(
        api.live(id, {
          points: (_r, data) => {
            let added = false;
            for (const name of Object.keys(data)) {
              charts.get(name)?.refresh();
              if (!known.has(name)) added = true;
            }
            if (added && tab === "charts") {
              void api.runSeries(id).then((s) => {
                series = s;
                for (const x of s) known.add(x.name);
                show("charts");
              });
            }
          },
          logs: (_r, data) => logs?.live(data.records),
          status: (_r, data) => {
            if (!run) return;
            run.status = data.status;
            void api.run(id).then((fresh) => {
              run = fresh;
              renderHeader(fresh);
              if (fresh.group) void loadJob(fresh);
            });
          },
          incident: (_r, inc) => {
            incidents = [...(incidents ?? []).filter((x) => x.id !== inc.id), inc];
            renderTabs();
            for (const [name, c] of charts) c.setSpans(spansOf(incidents, c.seriesName ?? name, id));
            if (tab === "diagnosis") show("diagnosis");
          },
        }),
      );
    }
  })();

  return () => {
    destroyCharts();
    logs?.destroy();
    for (const s of stops) s();
  };
}

/** projects / PROJECT / job GROUP / rank N (or the run's name). */
function runCrumbs(r: Run): { label: string; href?: string }[] {
  const out: { label: string; href?: string }[] = [{ label: r.project, href: paths.runs(r.project) }];
  if (r.group) out.push({ label: `job ${r.group}`, href: paths.runs(r.project, { job: r.group }) });
  out.push({ label: r.group && r.rank !== null ? `rank ${r.rank} · ${r.name}` : r.name });
  return out;
}
