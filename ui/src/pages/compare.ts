// Compare 2–20 runs: every metric with the runs overlaid, aligned by step
// or by time since each run's start, and the config keys that differ.

import * as api from "../api";
import type { Run, SeriesInfo } from "../api";
import { Chart, lazy, type XMode } from "../chart";
import { navigate, paths, setQuery, type Route } from "../router";
import { debounce, flatten, fmtValue, h, PALETTE, statusBadge } from "../util";
import { groupOf, groupRank } from "./run";
import { announceCrumbs, announceProject } from "../shell";
import { notFound } from "./empty";

/** Config keys whose values are not the same in every run (missing counts as different). */
export function configDiff(runs: Run[]): { key: string; values: unknown[] }[] {
  const flats = runs.map((r) => flatten(r.config));
  const keys = new Set<string>();
  for (const f of flats) for (const k of Object.keys(f)) keys.add(k);
  const out: { key: string; values: unknown[] }[] = [];
  for (const k of [...keys].sort()) {
    const values = flats.map((f) => f[k]);
    const first = JSON.stringify(values[0]);
    if (values.some((v) => JSON.stringify(v) !== first)) out.push({ key: k, values });
  }
  return out;
}

export function comparePage(root: HTMLElement, route: Route): () => void {
  const ids = (route.query.get("runs") ?? "").split(",").filter(Boolean).slice(0, 20);
  let xMode: XMode = route.query.get("x") === "rel" ? "rel" : "step";
  let smoothing = Math.min(0.99, Math.max(0, Number(route.query.get("smooth") ?? 0) || 0));
  let filter = route.query.get("s") ?? "";
  // `zall=1`: zooming one chart zooms every chart to the same range.
  let zoomAll = route.query.get("zall") === "1";
  let spreading = false;
  const charts: Chart[] = [];
  let observer = lazy();
  let runs: Run[] = [];
  let seriesByRun: SeriesInfo[][] = [];

  const zoomAllBox = h("input", { type: "checkbox", "aria-label": "zoom all charts together" });
  zoomAllBox.checked = zoomAll;
  const legend = h("div.cmp-legend");
  const diffEl = h("div.cmp-diff");
  const grid = h("div");
  const xBox = h("select", { "aria-label": "align by" }, h("option", { value: "step", selected: xMode === "step" }, "align by step"), h("option", { value: "rel", selected: xMode === "rel" }, "align by relative time"));
  const smoothBox = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: String(smoothing), "aria-label": "smoothing" });
  const filterBox = h("input", { type: "search", placeholder: "Filter metrics   ( / )", value: filter, "data-search": "", "aria-label": "filter metrics" });
  root.append(
    h("div.page-head", null, h("h1", null, `Compare ${ids.length} runs`)),
    legend,
    h("div.toolbar", null, filterBox, xBox, h("label.smooth", null, "smoothing ", smoothBox), h("label.check", { title: "Zooming one chart zooms every chart to the same range" }, zoomAllBox, "zoom all charts")),
    h("section", null, h("h2", null, "Config differences"), diffEl),
    h("section", null, h("h2", null, "Metrics"), grid),
  );

  if (ids.length < 2) {
    grid.append(h("div.empty", null, h("p", null, "Pick 2 to 20 runs in a runs table (tick them, then Compare), or add ", h("code", null, "?runs=a,b"), " to this URL.")));
  }

  const colorOf = (i: number) => PALETTE[i % PALETTE.length];

  function drawCharts(): void {
    for (const c of charts) c.destroy();
    charts.length = 0;
    observer.disconnect();
    observer = lazy();
    const names = new Map<string, number>();
    for (const list of seriesByRun) for (const s of list) names.set(s.name, (names.get(s.name) ?? 0) + 1);
    const f = filter.toLowerCase();
    const metrics = [...names.keys()].filter((n) => !f || n.toLowerCase().includes(f)).sort((a, b) => groupRank(groupOf(a)) - groupRank(groupOf(b)) || a.localeCompare(b));
    const groups = new Map<string, string[]>();
    for (const m of metrics) {
      const g = groupOf(m);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g)!.push(m);
    }
    grid.replaceChildren(
      ...[...groups.entries()].map(([g, list]) =>
        h(
          "details.group",
          { open: true },
          h("summary", null, h("span.group-name", null, g), h("span.muted", null, ` ${list.length}`)),
          h(
            "div.chart-grid",
            null,
            ...list.map((name) => {
              const lines = runs
                .map((r, i) => ({ r, i }))
                .filter(({ i }) => seriesByRun[i].some((s) => s.name === name))
                .map(({ r, i }) => ({ label: r.name, color: colorOf(i), run: r.id, name, offset: r.start_time }));
              const c: Chart = new Chart({ id: `compare:${name}`, title: name, lines, xMode, log: false, smoothing, syncKey: "compare", onZoom: (r) => spreadZoom(c, r) });
              charts.push(c);
              observer.observe(c.el, () => void c.load());
              return c.el;
            }),
          ),
        ),
      ),
    );
  }

  /** With "zoom all charts" on, one chart's zoom (or reset) is every chart's. */
  function spreadZoom(from: Chart, r: [number, number] | null): void {
    if (!zoomAll || spreading) return;
    spreading = true;
    try {
      for (const c of charts) if (c !== from) c.setZoom(r);
    } finally {
      spreading = false;
    }
  }
  zoomAllBox.addEventListener("change", () => {
    zoomAll = zoomAllBox.checked;
    setQuery({ zall: zoomAll ? 1 : null });
    const zoomed = charts.find((c) => c.zoomed);
    if (zoomAll && zoomed) spreadZoom(zoomed, zoomed.zoomed);
  });

  xBox.addEventListener("change", () => {
    xMode = xBox.value as XMode;
    setQuery({ x: xMode === "step" ? null : xMode });
    for (const c of charts) c.setView({ xMode });
  });
  smoothBox.addEventListener("input", debounce(() => {
    smoothing = Number(smoothBox.value);
    setQuery({ smooth: smoothing || null });
    for (const c of charts) c.setView({ smoothing });
  }, 60));
  filterBox.addEventListener("input", debounce(() => {
    filter = filterBox.value.trim();
    setQuery({ s: filter });
    drawCharts();
  }, 200));

  void (async () => {
    if (ids.length === 0) return;
    const loaded = await Promise.all(ids.map((id) => Promise.all([api.run(id), api.runSeries(id)]).catch(() => null)));
    runs = [];
    seriesByRun = [];
    const missing: string[] = [];
    loaded.forEach((x, i) => {
      if (x) {
        runs.push(x[0]);
        seriesByRun.push(x[1]);
      } else missing.push(ids[i]);
    });
    if (!runs.length) {
      announceCrumbs([{ label: "compare" }]);
      root.replaceChildren(notFound("runs to compare", missing.join(", ")));
      return;
    }
    announceProject(runs[0].project);
    announceCrumbs([{ label: runs[0].project, href: paths.runs(runs[0].project) }, { label: `compare ${runs.length} run${runs.length === 1 ? "" : "s"}` }]);
    legend.replaceChildren();
    legend.append(
      ...runs.map((r, i) =>
        h(
          "span.cmp-run",
          { "data-run": r.id },
          h("i", { style: `background:${colorOf(i)}` }),
          h("a", { href: paths.run(r.id) }, r.name),
          statusBadge(r.status),
          h(
            "button.tiny",
            {
              title: "Remove from the comparison",
              onclick: () => navigate(paths.compare(runs.filter((x) => x.id !== r.id).map((x) => x.id), Object.fromEntries(new URLSearchParams(location.search)))),
            },
            "×",
          ),
        ),
      ),
    );
    if (missing.length) legend.append(h("span.error", { role: "alert" }, `Not found: ${missing.join(", ")} (left out of the comparison)`));
    const diff = configDiff(runs);
    diffEl.replaceChildren(
      diff.length
        ? h(
            "div.scroll-x",
            null,
            h(
              "table.diff",
              null,
              h("thead", null, h("tr", null, h("th", null, "key"), ...runs.map((r, i) => h("th", null, h("i.sw", { style: `background:${colorOf(i)}` }), r.name)))),
              h("tbody", null, ...diff.map((d) => h("tr", { "data-key": d.key }, h("td.key", null, d.key), ...d.values.map((v) => h("td", { class: v === undefined ? "missing" : "" }, v === undefined ? "—" : fmtValue(v)))))),
            ),
          )
        : h("p.muted", null, runs.length > 1 ? "The configs are identical." : ""),
    );
    drawCharts();
  })();

  return () => {
    for (const c of charts) c.destroy();
    observer.disconnect();
  };
}
