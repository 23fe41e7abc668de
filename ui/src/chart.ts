// One chart: a uPlot canvas over one or more lines (a run's series, or the
// same series of several runs). It asks the server for `width` = its pixel
// width, so what comes back is M4 (first/last/min/max per pixel column) and
// every spike that happened is drawn; drag-to-zoom asks again for just that
// range, at full resolution.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import * as api from "./api";
import { fmtAxis, fmtUnit, unitOf, type Unit } from "./format";
import { cssVar, fmtCompact, fmtDuration, fmtTime, h } from "./util";

export type XMode = "step" | "time" | "rel";

export interface ChartLine {
  label: string;
  color: string;
  /** A run's series… */
  run?: string;
  name: string;
  /** …or a series outside runs (host/GPU), which has only times. */
  host?: { project: string; labels: Record<string, string> };
  /** Unix seconds subtracted from times for relative time (the run's start). */
  offset?: number;
}

export interface Span {
  /** The incident this span belongs to: its label links there. */
  incident?: string;
  href?: string;
  start_step: number | null;
  end_step: number | null;
  start_time: number;
  end_time: number | null;
  severity: string;
  title: string;
}

export interface ChartOptions {
  id: string;
  title: string;
  lines: ChartLine[];
  xMode: XMode;
  log: boolean;
  smoothing: number;
  spans?: Span[];
  height?: number;
  /** Start zoomed to this x range (from a shared URL). */
  zoom?: [number, number] | null;
  /** Told of every zoom and reset, so the page can keep it in its URL. */
  onZoom?: (range: [number, number] | null) => void;
  /** Server-side x range when not zoomed (e.g. a host series over a run's lifetime). */
  baseRange?: [number, number];
  /** A click on a point (not a drag): its x in the chart's mode, and the line. */
  onPick?: (x: number, mode: XMode, line: ChartLine) => void;
  /**
   * Charts with the same key share the hover: moving over one shows the
   * same x on all of them (Grafana's shared crosshair). The x mode is added
   * to the key, so step charts never sync with time charts.
   */
  syncKey?: string;
  /** A step to mark with a line (the evidence a diagnosis link points at). */
  mark?: number | null;
}

/** What a test or the bench can read about a drawn chart. */
export interface ChartProbe {
  title: string;
  width: number;
  fetches: number;
  drawnAt: number;
  zoom: [number, number] | null;
  nonFinite: number;
  spans: number;
  /** The unit its values are shown in. */
  unit: Unit;
  xMode: XMode;
  /** What its x axis measures; only charts of the same kind share the hover. */
  axis: "step" | "time" | "rel";
  /** What the legend says now (hovered or not). */
  legend: string;
  /** The x under the cursor, when hovered (directly or through the sync). */
  hoverX: number | null;
  lines: { label: string; run?: string; name: string; points: number; x: number[]; y: number[]; downsampled: boolean }[];
}

declare global {
  interface Window {
    __loupe: {
      charts: Record<string, ChartProbe>;
      requests: api.RequestRecord[];
      navStart: number;
      tableDrawnAt?: number;
      tableRows?: number;
      sortedAt?: number;
      sortMs?: number;
      /** How often the header's live alert stream has connected. */
      liveOpen?: number;
      /** The formatting module, for the tests' table of cases. */
      format?: typeof import("./format");
      /** The chart class, so a test can put charts on different axes side by side. */
      Chart?: typeof Chart;
      /** The time formatting, for the tests' cases. */
      time?: typeof import("./time");
    };
  }
}

window.__loupe ??= { charts: {}, requests: api.requestLog, navStart: performance.now() };

interface Marker {
  x: number;
  kind: "nan" | "inf" | "-inf";
  line: number;
}

/** TensorBoard's smoothing: an EMA debiased for its zero start; non-finite values pass through. */
export function smooth(y: ArrayLike<number>, weight: number): (number | null)[] {
  const out = new Array<number | null>(y.length);
  let last = 0;
  let n = 0;
  const constant = y.length > 0 && Array.prototype.every.call(y, (v: number) => v === y[0]);
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (!Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    if (constant) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

function alpha(color: string, a: number): string {
  const m = /^#([0-9a-f]{6})$/i.exec(color);
  if (!m) return color;
  const n = parseInt(m[1], 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
}

const SEVERITY_FILL: Record<string, string> = {
  critical: "rgba(255,60,60,0.16)",
  warning: "rgba(255,170,0,0.16)",
  info: "rgba(80,140,255,0.13)",
  anomaly: "rgba(200,80,255,0.14)",
};

export class Chart {
  readonly el: HTMLElement;
  private plotEl: HTMLElement;
  private legendEl: HTMLElement;
  private statusEl: HTMLElement;
  private plot: uPlot | null = null;
  private data: api.SeriesData[] = [];
  private markers: Marker[] = [];
  private zoomRange: [number, number] | null = null;
  private fetches = 0;
  private abort: AbortController | null = null;
  private loaded = false;
  private width = 0;
  private resizeObs: ResizeObserver;
  private downAt: { x: number; y: number } | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly unit: Unit;
  private spanLayer: HTMLElement;

  constructor(private opts: ChartOptions) {
    this.zoomRange = opts.zoom ?? null;
    this.unit = unitOf(opts.lines[0]?.name ?? "");
    this.plotEl = h("div.chart-plot");
    this.spanLayer = h("div.span-labels");
    this.legendEl = h("div.chart-legend");
    this.statusEl = h("span.chart-status");
    const logBtn = h("button.tiny", { title: "Log scale", "aria-pressed": String(opts.log) }, "log");
    logBtn.addEventListener("click", () => {
      this.opts.log = !this.opts.log;
      logBtn.setAttribute("aria-pressed", String(this.opts.log));
      this.rebuild();
    });
    const resetBtn = h("button.tiny", { title: "Reset zoom (or double-click the chart)" }, "reset");
    resetBtn.addEventListener("click", () => void this.resetZoom());
    this.el = h(
      "div.chart",
      { "data-chart": opts.id },
      h(
        "div.chart-head",
        null,
        h("span.chart-title", { title: opts.title }, opts.title),
        this.unit !== "none" ? h("span.chart-unit.muted", { title: "unit, from the series name" }, unitLabel(this.unit)) : null,
        this.statusEl,
        logBtn,
        resetBtn,
      ),
      this.plotEl,
      this.legendEl,
    );
    this.plotEl.style.height = `${opts.height ?? 190}px`;
    this.resizeObs = new ResizeObserver(() => {
      const w = Math.floor(this.plotEl.clientWidth);
      if (!this.plot || w === 0 || Math.abs(w - this.width) < 2) return;
      this.plot.setSize({ width: w, height: this.plotHeight() });
      // M4 is per pixel column: a much wider chart asks again.
      if (w > this.width * 1.25 || w < this.width * 0.6) void this.load();
      this.width = w;
    });
  }

  /** Fetches and draws; the first call is made when the chart scrolls into view. */
  async load(): Promise<void> {
    this.loaded = true;
    this.resizeObs.observe(this.plotEl);
    await this.fetchAndDraw(this.zoomRange);
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  get xMode(): XMode {
    return this.opts.xMode;
  }

  /** The zoomed x range, or null. */
  get zoomed(): [number, number] | null {
    return this.zoomRange;
  }

  /** The series a single-line chart shows (for spans by series). */
  get seriesName(): string | undefined {
    return this.opts.lines.length === 1 ? this.opts.lines[0].name : undefined;
  }

  /** Another chart's zoom, applied here without telling the page again. */
  setZoom(r: [number, number] | null): void {
    const same = r === null ? this.zoomRange === null : this.zoomRange !== null && this.zoomRange[0] === r[0] && this.zoomRange[1] === r[1];
    if (same) return;
    this.zoomRange = r;
    if (this.loaded) void this.fetchAndDraw(r);
  }

  setView(p: { xMode?: XMode; smoothing?: number; log?: boolean }): void {
    const xChanged = p.xMode !== undefined && p.xMode !== this.opts.xMode;
    Object.assign(this.opts, p);
    if (!this.loaded) return;
    if (xChanged) {
      if (this.zoomRange) this.opts.onZoom?.(null);
      this.zoomRange = null;
      void this.fetchAndDraw(null);
    } else {
      this.rebuild();
    }
  }

  setSpans(spans: Span[]): void {
    this.opts.spans = spans;
    const probe = window.__loupe.charts[this.opts.id];
    if (probe) probe.spans = spans.length;
    this.plot?.redraw(false, false);
  }

  /** New points arrived: fetch again (at most once a second) unless zoomed in. */
  refresh(): void {
    if (!this.loaded || this.zoomRange || this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      void this.fetchAndDraw(null);
    }, 1000);
  }

  async zoom(from: number, to: number): Promise<void> {
    if (!(to > from)) return;
    this.zoomRange = [from, to];
    this.opts.onZoom?.(this.zoomRange);
    await this.fetchAndDraw(this.zoomRange);
  }

  async resetZoom(): Promise<void> {
    if (this.zoomRange) this.opts.onZoom?.(null);
    this.zoomRange = null;
    await this.fetchAndDraw(null);
  }

  destroy(): void {
    this.abort?.abort();
    this.resizeObs.disconnect();
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.plot?.destroy();
    this.plot = null;
    delete window.__loupe.charts[this.opts.id];
  }

  private plotHeight(): number {
    return this.opts.height ?? 190;
  }

  /**
   * What the x axis measures, for the shared hover: steps, wall-clock
   * seconds, or seconds since each run's start. Only charts whose x is the
   * same kind (and so in the same units) share a hover line: a step chart
   * never shows a line at "step 1.7e9" because a time chart was hovered.
   */
  axisKind(): "step" | "time" | "rel" {
    const x = this.serverX();
    return x === "step" ? "step" : this.opts.xMode === "rel" ? "rel" : "time";
  }

  private serverX(): "step" | "time" {
    return this.opts.xMode === "step" && !this.opts.lines.some((l) => l.host) ? "step" : "time";
  }

  private async fetchAndDraw(range: [number, number] | null): Promise<void> {
    this.abort?.abort();
    const ac = new AbortController();
    this.abort = ac;
    const width = Math.max(50, Math.floor(this.plotEl.clientWidth || 600));
    this.width = width;
    const x = this.serverX();
    const rel = this.opts.xMode === "rel";
    this.statusEl.textContent = "…";
    try {
      const results = await Promise.all(
        this.opts.lines.map((line) => {
          const off = rel ? (line.offset ?? 0) : 0;
          const q: api.DataQuery = { x, width };
          if (range) {
            q.from = x === "step" ? Math.floor(range[0]) : range[0] + off;
            q.to = x === "step" ? Math.ceil(range[1]) : range[1] + off;
          } else if (this.opts.baseRange) {
            [q.from, q.to] = this.opts.baseRange;
          }
          return line.host
            ? api.hostSeriesData(line.host.project, line.name, line.host.labels, q, ac.signal)
            : api.seriesData(line.run ?? "", line.name, q, ac.signal);
        }),
      );
      if (ac.signal.aborted) return;
      this.fetches++;
      if (rel) {
        results.forEach((d, i) => {
          const off = this.opts.lines[i].offset ?? 0;
          for (let j = 0; j < d.x.length; j++) d.x[j] -= off;
        });
      }
      this.data = results;
      const drawn = results.reduce((a, d) => a + d.x.length, 0);
      this.statusEl.textContent = `${results.some((d) => d.downsampled) ? "M4 · " : ""}${fmtCompact(drawn)} pts${range ? " · zoomed" : ""}`;
      this.statusEl.title = results.some((d) => d.downsampled)
        ? "Downsampled on the server to first/last/min/max per pixel column: every extreme is drawn. Drag to zoom to full resolution."
        : "Every point is drawn.";
      this.rebuild();
    } catch (e) {
      if (ac.signal.aborted) return;
      this.statusEl.textContent = "error";
      this.statusEl.title = e instanceof Error ? e.message : String(e);
    }
  }

  /** Builds uPlot's aligned data and series from the fetched lines and draws. */
  private rebuild(): void {
    if (!this.data.length && !this.loaded) return;
    const { lines, smoothing, log } = this.opts;
    const markers: Marker[] = [];
    const tables: uPlot.AlignedData[] = [];
    const series: uPlot.Series[] = [{}];
    const withSmooth = smoothing > 0;
    this.data.forEach((d, li) => {
      const n = d.x.length;
      const y = new Array<number | null>(n);
      for (let i = 0; i < n; i++) {
        const v = d.y[i];
        if (Number.isNaN(v)) markers.push({ x: d.x[i], kind: "nan", line: li });
        else if (v === Infinity) markers.push({ x: d.x[i], kind: "inf", line: li });
        else if (v === -Infinity) markers.push({ x: d.x[i], kind: "-inf", line: li });
        y[i] = Number.isFinite(v) && (!log || v > 0) ? v : null;
      }
      const cols: (number | null)[][] = [y];
      const color = lines[li].color;
      series.push({
        label: lines[li].label,
        stroke: withSmooth ? alpha(color, 0.28) : color,
        width: withSmooth ? 1 : 1.5,
        spanGaps: false,
        points: { show: n < 60 },
      });
      if (withSmooth) {
        cols.push(smooth(d.y, smoothing).map((v) => (v !== null && (!log || v > 0) ? v : null)));
        series.push({ label: `${lines[li].label} (smoothed)`, stroke: color, width: 1.6, spanGaps: false, points: { show: false } });
      }
      tables.push([d.x, ...cols] as uPlot.AlignedData);
    });
    this.markers = markers;
    const aligned: uPlot.AlignedData = tables.length === 1 ? tables[0] : uPlot.join(tables);
    this.publishProbe();

    const width = Math.max(50, Math.floor(this.plotEl.clientWidth || 600));
    const fg = cssVar("--fg-muted") || "#888";
    const grid = cssVar("--grid") || "rgba(128,128,128,0.15)";
    const mode = this.opts.xMode;
    const axisFont = "11px system-ui, sans-serif";
    const opts: uPlot.Options = {
      width,
      height: this.plotHeight(),
      legend: { show: false },
      padding: [8, 18, 0, 0],
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: {
          dblclick: () => () => {
            void this.resetZoom();
            return null;
          },
        },
        points: { size: 6 },
        // Only the hover travels: a drag (zoom) or a double-click (reset) stays on
        // its chart, and while dragging the others are left alone (a zoom's round
        // trip does not wait for 49 legends).
        sync: this.opts.syncKey ? { key: `${this.opts.syncKey}:${this.axisKind()}`, setSeries: false, scales: ["x", null], filters: { pub: (type) => (type === "mousemove" && this.downAt === null) || type === "mouseleave" } } : undefined,
      },
      scales: {
        x: {
          time: mode === "time",
          range: this.zoomRange ? () => [this.zoomRange![0], this.zoomRange![1]] : undefined,
        },
        y: log ? { distr: 3, log: 10 } : {},
      },
      axes: [
        {
          stroke: fg,
          font: axisFont,
          size: 30,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1, size: 4 },
          values: mode === "rel" ? (_u, splits) => splits.map((v) => fmtDuration(v)) : mode === "step" ? (_u, splits) => splits.map((v) => fmtCompact(v)) : undefined,
        },
        {
          stroke: fg,
          font: axisFont,
          size: 52,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1, size: 4 },
          values: (_u, splits) => splits.map((v) => fmtAxis(v, this.unit)),
        },
      ],
      series,
      hooks: {
        drawClear: [(u) => this.drawSpans(u)],
        draw: [(u) => this.drawMarkers(u), (u) => this.placeSpanLabels(u)],
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const from = u.posToVal(u.select.left, "x");
            const to = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            void this.zoom(from, to);
          },
        ],
        setCursor: [(u) => this.showLegend(u)],
        ready: [(u) => this.bindPick(u)],
      },
    };
    this.plot?.destroy();
    this.plotEl.textContent = "";
    this.plot = new uPlot(opts, aligned, this.plotEl);
    this.plot.over.append(this.spanLayer);
    this.showLegend(this.plot);
    const probe = window.__loupe.charts[this.opts.id];
    if (probe) probe.drawnAt = performance.now();
    this.el.dataset.drawn = String(this.fetches);
  }

  private publishProbe(): void {
    window.__loupe.charts[this.opts.id] = {
      title: this.opts.title,
      width: this.width,
      fetches: this.fetches,
      drawnAt: 0,
      zoom: this.zoomRange,
      nonFinite: this.markers.length,
      spans: this.opts.spans?.length ?? 0,
      unit: this.unit,
      xMode: this.opts.xMode,
      axis: this.axisKind(),
      legend: "",
      hoverX: null,
      lines: this.data.map((d, i) => ({
        label: this.opts.lines[i].label,
        run: this.opts.lines[i].run,
        name: this.opts.lines[i].name,
        points: d.x.length,
        x: d.x,
        y: d.y,
        downsampled: d.downsampled,
      })),
    };
  }

  /** A span's x range in the chart's mode, or null when it has none there. */
  private spanRange(s: Span): [number, number] | null {
    const mode = this.opts.xMode;
    if (mode === "step") {
      const a = s.start_step;
      if (a === null) return null;
      return [a, s.end_step ?? a];
    }
    const off = mode === "rel" ? (this.opts.lines[0]?.offset ?? 0) : 0;
    return [s.start_time - off, (s.end_time ?? Date.now() / 1000) - off];
  }

  private drawSpans(u: uPlot): void {
    const spans = this.opts.spans;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    for (const s of spans ?? []) {
      const r = this.spanRange(s);
      if (!r) continue;
      let x0 = u.valToPos(r[0], "x", true);
      let x1 = u.valToPos(r[1], "x", true);
      if (x1 - x0 < 3) {
        x0 -= 1.5;
        x1 += 1.5;
      }
      x0 = Math.max(left, x0);
      x1 = Math.min(left + width, x1);
      if (x1 <= x0) continue;
      ctx.fillStyle = SEVERITY_FILL[s.severity] ?? SEVERITY_FILL.info;
      ctx.fillRect(x0, top, x1 - x0, height);
    }
    const mark = this.opts.mark;
    if (mark !== null && mark !== undefined && this.opts.xMode === "step") {
      const x = u.valToPos(mark, "x", true);
      if (x >= left && x <= left + width) {
        ctx.strokeStyle = "#e5484d";
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + height);
        ctx.stroke();
      }
    }
    ctx.restore();
  }

  /**
   * Each incident's span gets a label above the plot that links to the
   * incident (anomaly spans stay unlabelled: they are the incident's parts).
   * Labels are DOM links, so they are clickable and readable by tests.
   */
  private placeSpanLabels(u: uPlot): void {
    const labels: HTMLElement[] = [];
    const w = u.over.clientWidth;
    for (const s of this.opts.spans ?? []) {
      if (!s.incident) continue;
      const r = this.spanRange(s);
      if (!r) continue;
      const x0 = Math.max(0, u.valToPos(r[0], "x"));
      const x1 = Math.min(w, u.valToPos(r[1], "x"));
      if (x1 < 0 || x0 > w || x1 < x0 - 3) continue;
      const a = h("a.span-label", { class: `sev-${s.severity}`, href: s.href ?? "#", title: s.title, "data-incident": s.incident }, s.title);
      a.style.left = `${Math.min(x0, Math.max(0, w - 60))}px`;
      a.style.maxWidth = `${Math.max(60, Math.min(w - x0, 220))}px`;
      // uPlot starts a drag-zoom on mousedown in the plot: a label click is not one.
      a.addEventListener("mousedown", (e) => e.stopPropagation());
      a.addEventListener("mouseup", (e) => e.stopPropagation());
      labels.push(a);
    }
    this.spanLayer.replaceChildren(...labels);
  }

  private drawMarkers(u: uPlot): void {
    if (!this.markers.length) return;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const r = 4 * devicePixelRatio;
    ctx.save();
    ctx.lineWidth = 1.5 * devicePixelRatio;
    for (const m of this.markers) {
      const cx = u.valToPos(m.x, "x", true);
      if (cx < left - 1 || cx > left + width + 1) continue;
      ctx.fillStyle = ctx.strokeStyle = m.kind === "nan" ? "#e5484d" : "#f5a623";
      ctx.beginPath();
      if (m.kind === "inf") {
        const y = top + r + 1;
        ctx.moveTo(cx, y - r);
        ctx.lineTo(cx + r, y + r);
        ctx.lineTo(cx - r, y + r);
        ctx.closePath();
        ctx.fill();
      } else if (m.kind === "-inf") {
        const y = top + height - r - 1;
        ctx.moveTo(cx, y + r);
        ctx.lineTo(cx + r, y - r);
        ctx.lineTo(cx - r, y - r);
        ctx.closePath();
        ctx.fill();
      } else {
        const y = top + height - r - 2;
        ctx.moveTo(cx - r, y - r);
        ctx.lineTo(cx + r, y + r);
        ctx.moveTo(cx + r, y - r);
        ctx.lineTo(cx - r, y + r);
        ctx.stroke();
        ctx.globalAlpha = 0.25;
        ctx.beginPath();
        ctx.moveTo(cx, top);
        ctx.lineTo(cx, top + height);
        ctx.stroke();
        ctx.globalAlpha = 1;
      }
    }
    ctx.restore();
  }

  private fmtX(v: number): string {
    if (this.opts.xMode === "time") return fmtTime(v);
    if (this.opts.xMode === "rel") return `+${fmtDuration(v)}`;
    return `step ${v}`;
  }

  /** The wall-clock time of the hovered x, when the x is not a time already. */
  private clockOf(x: number, line: ChartLine): number | undefined {
    if (this.opts.xMode === "time") return x;
    if (this.opts.xMode === "rel") return x + (line.offset ?? 0);
    // Not while dragging a zoom: the step under the pointer changes every frame.
    if (!line.run || this.downAt !== null) return undefined;
    return stepClock.get(line.run, line.name, x, () => this.plot && this.showLegend(this.plot));
  }

  private showLegend(u: uPlot): void {
    const idx = u.cursor.idx;
    const lines = this.opts.lines;
    const per = this.opts.smoothing > 0 ? 2 : 1;
    const fmt = (v: number | null | undefined) => fmtUnit(v, this.unit);
    this.legendEl.textContent = "";
    const probe = window.__loupe.charts[this.opts.id];
    if (idx === null || idx === undefined) {
      // Not hovering: each line's last value (and the run's name when overlaid).
      lines.forEach((l, li) => {
        const y = this.data[li]?.y ?? [];
        const last = y.length ? y[y.length - 1] : undefined;
        this.legendEl.append(
          h("span.lg", null, h("i", { style: `background:${l.color}` }), lines.length > 1 ? `${l.label} ` : "last ", last === undefined ? "" : h("b", null, fmt(last))),
        );
      });
      if (probe) {
        probe.legend = this.legendEl.textContent ?? "";
        probe.hoverX = null;
      }
      return;
    }
    const xv = u.data[0][idx];
    // Overlaid runs each have their own clock; one run's lines share one.
    const sameRun = lines.every((l) => l.run === lines[0].run && l.offset === lines[0].offset);
    const clock0 = sameRun && lines[0] ? this.clockOf(xv, lines[0]) : undefined;
    this.legendEl.append(h("span.lg-x", null, this.fmtX(xv)));
    if (this.opts.xMode !== "time" && clock0 !== undefined) this.legendEl.append(h("span.lg-t.muted", { title: "wall-clock time" }, fmtTime(clock0)));
    lines.forEach((l, li) => {
      // Aligned data has undefined where a line has no point at this x: show the
      // line's own nearest point instead, and its non-finite value if it is one.
      const d = this.data[li];
      let v: number | null | undefined = u.data[1 + li * per][idx];
      if (v === null || v === undefined) {
        const j = nearest(d.x, xv);
        v = j >= 0 && d.x[j] === xv ? d.y[j] : v;
      }
      const sm = per === 2 ? u.data[2 + li * per][idx] : undefined;
      const clock = !sameRun && this.opts.xMode !== "time" ? this.clockOf(xv, l) : undefined;
      this.legendEl.append(
        h(
          "span.lg",
          null,
          h("i", { style: `background:${l.color}` }),
          lines.length > 1 ? `${l.label} ` : "",
          h("b", null, v === null || v === undefined ? "–" : fmt(v)),
          sm !== undefined && sm !== null ? h("span.muted", null, ` (smoothed ${fmt(sm)})`) : null,
          clock !== undefined ? h("span.muted", null, ` at ${fmtTime(clock).slice(11)}`) : null,
        ),
      );
    });
    if (probe) {
      probe.legend = [...this.legendEl.children].map((c) => c.textContent).join("  ");
      probe.hoverX = xv;
    }
  }

  private bindPick(u: uPlot): void {
    const pick = this.opts.onPick;
    u.over.addEventListener("mousedown", (e) => {
      this.downAt = { x: e.clientX, y: e.clientY };
      // A drag may end outside the chart: the hover syncs again after it.
      document.addEventListener("mouseup", () => setTimeout(() => (this.downAt = null)), { once: true });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    // A double-click resets the zoom: it must not also count as two picks.
    u.over.addEventListener("dblclick", () => clearTimeout(timer));
    u.over.addEventListener("mouseup", (e) => {
      const d = this.downAt;
      this.downAt = null;
      if (!pick || !d || Math.abs(e.clientX - d.x) > 3 || e.detail > 1) {
        clearTimeout(timer);
        return;
      }
      const idx = u.cursor.idx;
      const top = u.cursor.top ?? 0;
      clearTimeout(timer);
      timer = setTimeout(() => this.pickAt(u, idx, top, pick), 300);
    });
  }

  private pickAt(u: uPlot, idx: number | null | undefined, top: number, pick: NonNullable<ChartOptions["onPick"]>): void {
    if (idx === null || idx === undefined) return;
    const x = u.data[0][idx];
    // The line closest to the pointer vertically is the one meant.
    let best = 0;
    let bestDist = Infinity;
    const per = this.opts.smoothing > 0 ? 2 : 1;
    this.opts.lines.forEach((_l, li) => {
      const v = u.data[1 + li * per][idx];
      if (v === null || v === undefined) return;
      const dist = Math.abs(u.valToPos(v, "y") - top);
      if (dist < bestDist) {
        bestDist = dist;
        best = li;
      }
    });
    pick(x, this.opts.xMode, this.opts.lines[best]);
  }
}

/** What the chart head says the unit is. */
function unitLabel(u: Unit): string {
  return { bytes: "bytes", "bytes/s": "bytes/s", percent: "%", celsius: "°C", seconds: "seconds", ms: "ms", watts: "W", mhz: "MHz", per_s: "per second", none: "" }[u];
}

/**
 * The wall-clock time of a run's step, for the hover legend of step charts
 * (M4 points carry no time). One raw point read per step hovered, after the
 * pointer rests 60 ms, cached per run: every synced chart of the run asks
 * for the same step and shares one request.
 */
const stepClock = (() => {
  const known = new Map<string, number | null>();
  const waiting = new Map<string, (() => void)[]>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let queued: { key: string; run: string; name: string; step: number } | null = null;
  const fetchQueued = () => {
    const q = queued;
    queued = null;
    if (!q || known.has(q.key)) return;
    known.set(q.key, null);
    void api
      .seriesData(q.run, q.name, { x: "step", from: q.step, to: q.step, limit: 1 })
      .then((d) => {
        const ns = d.time_ns?.[0];
        if (ns === undefined) return;
        known.set(q.key, ns / 1e9);
        for (const f of waiting.get(q.key) ?? []) f();
      })
      .catch(() => known.delete(q.key))
      .finally(() => waiting.delete(q.key));
  };
  return {
    get(run: string, name: string, step: number, ready: () => void): number | undefined {
      const key = `${run}\u0000${Math.round(step)}`;
      const t = known.get(key);
      if (t !== undefined && t !== null) return t;
      const list = waiting.get(key) ?? [];
      if (list.length < 64) list.push(ready);
      waiting.set(key, list);
      if (t === undefined) {
        queued = { key, run, name, step: Math.round(step) };
        clearTimeout(timer);
        timer = setTimeout(fetchQueued, 60);
      }
      if (known.size > 20_000) known.clear();
      return undefined;
    },
  };
})();

/** Index of the value in sorted `xs` closest to `x`. */
function nearest(xs: number[], x: number): number {
  let lo = 0;
  let hi = xs.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs(xs[lo - 1] - x) <= Math.abs(xs[lo] - x)) return lo - 1;
  return lo;
}

/** Calls `show` once per element the first time it comes near the viewport. */
export function lazy(): { observe(el: Element, show: () => void): void; disconnect(): void } {
  const pending = new Map<Element, () => void>();
  const io = new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        const f = pending.get(e.target);
        pending.delete(e.target);
        io.unobserve(e.target);
        f?.();
      }
    },
    { rootMargin: "300px 0px" },
  );
  return {
    observe(el, show) {
      pending.set(el, show);
      io.observe(el);
    },
    disconnect() {
      io.disconnect();
      pending.clear();
    },
  };
}
