// The runs table of a project: every run (paged in from the API, 1000 at a
// time after a small first page), filtered and sorted in the browser so a
// sort of 10k runs is one array sort, drawn by a virtualised table.

import * as api from "../api";
import type { Run } from "../api";
import { matches, parseFilter, type ParsedFilter } from "../filter";
import { pageKeys } from "../keys";
import { navigate, paths, setQuery, type Route } from "../router";
import { type Column, VTable } from "../table";
import { debounce, flatten, fmtAgo, fmtDuration, fmtNum, fmtTime, fmtValue, h, runDuration, statusBadge } from "../util";

const flatCache = new WeakMap<Run, Record<string, unknown>>();
function flatConfig(r: Run): Record<string, unknown> {
  let f = flatCache.get(r);
  if (!f) {
    f = flatten(r.config);
    flatCache.set(r, f);
  }
  return f;
}

/** Sort keys the server understands, so the first page already comes sorted. */
function serverSort(col: string, desc: boolean): string | undefined {
  const m = /^summary\.(.+)\.(last|min|max)$/.exec(col);
  const key = m ? col : ({ start_time: "start_time", name: "name", status: "status" } as Record<string, string>)[col];
  return key ? `${desc ? "-" : ""}${key}` : undefined;
}

function sortValue(r: Run, col: string): number | string | null {
  switch (col) {
    case "status":
      return r.status;
    case "name":
      return r.name.toLowerCase();
    case "start_time":
      return r.start_time;
    case "duration":
      return runDuration(r);
    case "host":
      return r.host ?? null;
    case "tags":
      return r.tags.join(",") || null;
    case "health":
      return r.health ?? null;
    case "incidents":
      return r.open_incidents ?? null;
  }
  if (col.startsWith("config.")) {
    const v = flatConfig(r)[col.slice(7)];
    if (typeof v === "number") return v;
    if (v === undefined || v === null) return null;
    return typeof v === "string" ? v.toLowerCase() : JSON.stringify(v);
  }
  const m = /^summary\.(.+)\.(last|min|max)$/.exec(col);
  if (m) {
    const v = r.summary[m[1]]?.[m[2] as "last" | "min" | "max"];
    return v === undefined || Number.isNaN(v) ? null : v;
  }
  return null;
}

/**
 * Sorts in place by one column; missing values go last either way. Numeric
 * columns sort an index array over a Float64Array of keys (no per-compare
 * lookups or allocations): 10k runs sort in a few milliseconds.
 */
export function sortRuns(runs: Run[], col: string, desc: boolean): Run[] {
  const n = runs.length;
  const keys = runs.map((r) => sortValue(r, col));
  const dir = desc ? -1 : 1;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (keys.every((k) => k === null || typeof k === "number")) {
    const num = new Float64Array(n);
    for (let i = 0; i < n; i++) num[i] = keys[i] === null ? NaN : (keys[i] as number);
    order.sort((a, b) => {
      const x = num[a];
      const y = num[b];
      if (x !== x) return y !== y ? a - b : 1;
      if (y !== y) return -1;
      return x < y ? -dir : x > y ? dir : a - b;
    });
  } else {
    order.sort((a, b) => {
      const x = keys[a];
      const y = keys[b];
      if (x === null) return y === null ? a - b : 1;
      if (y === null) return -1;
      const xs = typeof x === "number" ? x : String(x);
      const ys = typeof y === "number" ? y : String(y);
      return xs < ys ? -dir : xs > ys ? dir : a - b;
    });
  }
  const copy = runs.slice();
  for (let i = 0; i < n; i++) runs[i] = copy[order[i]];
  return runs;
}

function baseColumns(): Column<Run>[] {
  return [
    { id: "status", label: "Status", width: 104, render: (r) => statusBadge(r.status) },
    { id: "name", label: "Name", width: 220, render: (r) => h("a.run-link", { href: paths.run(r.id), title: `${r.name} (${r.id})` }, r.name) },
    { id: "start_time", label: "Started", width: 150, render: (r) => h("span", { title: fmtTime(r.start_time) }, fmtAgo(r.start_time)) },
    { id: "duration", label: "Duration", width: 90, align: "right", render: (r) => fmtDuration(runDuration(r)) },
    {
      id: "host",
      label: "Host / ranks",
      width: 140,
      render: (r) => `${r.host ?? ""}${r.world_size && r.world_size > 1 ? ` · ${r.rank ?? "?"}/${r.world_size}` : ""}`,
    },
    { id: "tags", label: "Tags", width: 150, render: (r) => h("span", null, ...r.tags.map((t) => h("span.tag", null, t))) },
    {
      id: "health",
      label: "Health",
      width: 76,
      align: "right",
      render: (r) => (r.health === undefined || r.health === null ? h("span.muted", null, "–") : h("span", { class: `health h${Math.floor(r.health / 25)}` }, fmtNum(Math.round(r.health)))),
    },
    {
      id: "incidents",
      label: "Incidents",
      width: 84,
      align: "right",
      title: "Open incidents",
      render: (r) => (r.open_incidents ? h("span.inc-count", null, String(r.open_incidents)) : h("span.muted", null, r.open_incidents === 0 ? "0" : "–")),
    },
  ];
}

function dynamicColumn(id: string): Column<Run> | null {
  if (id.startsWith("config.")) {
    const key = id.slice(7);
    return { id, label: key, title: `config.${key}`, width: 110, align: "right", render: (r) => fmtValue(flatConfig(r)[key]) };
  }
  const m = /^summary\.(.+)\.(last|min|max)$/.exec(id);
  if (m) {
    const [, series, stat] = m;
    return {
      id,
      label: `${series} ${stat}`,
      title: `${stat} of ${series}`,
      width: 120,
      align: "right",
      render: (r) => {
        const v = r.summary[series]?.[stat as "last" | "min" | "max"];
        return v === undefined ? "" : h("span", { class: Number.isFinite(v) ? "" : "nonfinite" }, fmtNum(v));
      },
    };
  }
  return null;
}

/** The columns to offer: the fixed ones, then summaries and config keys seen in the runs. */
function availableColumns(runs: Run[]): { series: string[]; config: string[] } {
  const series = new Map<string, number>();
  const config = new Map<string, Set<string>>();
  for (const r of runs.slice(0, 500)) {
    for (const s of Object.keys(r.summary)) series.set(s, (series.get(s) ?? 0) + 1);
    for (const [k, v] of Object.entries(flatConfig(r))) {
      let vals = config.get(k);
      if (!vals) config.set(k, (vals = new Set()));
      if (vals.size < 3) vals.add(JSON.stringify(v));
    }
  }
  // Config keys whose value differs between runs first: those are the ones people compare.
  const cfg = [...config.entries()].sort((a, b) => b[1].size - a[1].size || a[0].localeCompare(b[0])).map(([k]) => k);
  const rank = (s: string) => (s.startsWith("train/") ? 0 : s.startsWith("eval/") ? 1 : s.startsWith("sys/") || s.startsWith("gpu/") ? 3 : 2);
  // Series most runs have first (what a table can compare), then by group and name.
  const names = [...series.keys()].sort((a, b) => series.get(b)! - series.get(a)! || rank(a) - rank(b) || a.localeCompare(b));
  return { series: names, config: cfg };
}

function defaultColumns(runs: Run[]): string[] {
  const { series, config } = availableColumns(runs);
  const base = baseColumns().map((c) => c.id);
  const loss = series.filter((s) => /loss/.test(s)).slice(0, 2);
  const metrics = [...loss, ...series.filter((s) => !loss.includes(s) && !s.startsWith("sys/") && !s.startsWith("gpu/"))].slice(0, 3);
  return [...base, ...metrics.map((s) => `summary.${s}.last`), ...loss.slice(0, 1).map((s) => `summary.${s}.min`), ...config.slice(0, 3).map((k) => `config.${k}`)];
}

export function runsPage(root: HTMLElement, route: Route): () => void {
  const project = route.arg;
  const q = route.query;
  let filterText = q.get("f") ?? "";
  const sortParam = q.get("sort") ?? "-start_time";
  let sort = { col: sortParam.replace(/^-/, ""), desc: sortParam.startsWith("-") };
  let statusSel = q.get("status") ?? "";
  let cols: string[] | null = q.get("cols") ? q.get("cols")!.split(",").filter(Boolean) : (JSON.parse(localStorage.getItem(`loupe.cols.${project}`) ?? "null") as string[] | null);
  let all: Run[] = [];
  let shown: Run[] = [];
  let parsed: ParsedFilter = parseFilter(filterText);
  let loading: AbortController | null = null;
  let loadedAll = false;
  const selected = new Set<string>();

  const filterBox = h("input.filter", {
    type: "search",
    placeholder: "Filter: words, status:running, tag:x, config.lr > 1e-4, loss < 2   ( / )",
    value: filterText,
    "data-search": "",
    "aria-label": "filter runs",
    spellcheck: "false",
  });
  const statusBox = h(
    "select",
    { "aria-label": "status" },
    ...["", "running", "finished", "failed", "crashed", "killed", "lost"].map((s) => h("option", { value: s, selected: s === statusSel }, s || "any status")),
  );
  const countEl = h("span.muted.count");
  const errEl = h("span.filter-err");
  const compareBtn = h("button.primary", { disabled: true, title: "Compare the selected runs (c)" }, "Compare");
  const colsBtn = h("button", { title: "Choose columns", "aria-haspopup": "true" }, "Columns");
  const picker = h("div.popover", { hidden: true });

  const table = new VTable<Run>({
    columns: [],
    key: (r) => r.id,
    sort,
    selected,
    empty: "No runs match.",
    onSort: (col) => {
      sort = sort.col === col ? { col, desc: !sort.desc } : { col, desc: col === "start_time" };
      setQuery({ sort: `${sort.desc ? "-" : ""}${sort.col}` });
      table.setSort(sort);
      const t0 = performance.now();
      applyView();
      window.__loupe.sortedAt = performance.now();
      window.__loupe.sortMs = performance.now() - t0;
      if (!loadedAll) reload();
    },
    onOpen: (r) => navigate(paths.run(r.id)),
    onSelect: () => {
      compareBtn.disabled = selected.size < 2 || selected.size > 20;
      compareBtn.textContent = selected.size ? `Compare ${selected.size}` : "Compare";
    },
  });
  table.el.classList.add("runs-table");

  const compare = () => {
    if (selected.size >= 2 && selected.size <= 20) navigate(paths.compare([...selected]));
  };
  compareBtn.addEventListener("click", compare);

  function setColumns(ids: string[]): void {
    cols = ids;
    const base = new Map(baseColumns().map((c) => [c.id, c]));
    table.setColumns(ids.map((id) => base.get(id) ?? dynamicColumn(id)).filter((c): c is Column<Run> => c !== null));
  }

  function applyView(): void {
    const cmps = parsed.comparisons;
    shown = cmps.length ? all.filter((r) => matches(r, cmps, flatConfig(r))) : all.slice();
    sortRuns(shown, sort.col, sort.desc);
    table.setRows(shown);
    countEl.textContent = `${shown.length.toLocaleString()}${shown.length !== all.length ? ` of ${all.length.toLocaleString()}` : ""} runs${loadedAll ? "" : " (loading…)"}`;
  }

  function reload(): void {
    loading?.abort();
    const ac = new AbortController();
    loading = ac;
    all = [];
    loadedAll = false;
    const params: api.RunListParams = {
      project,
      status: parsed.status ?? (statusSel || undefined),
      tag: parsed.tag,
      q: parsed.q,
      sort: serverSort(sort.col, sort.desc),
    };
    errEl.textContent = "";
    api
      .allRuns(
        params,
        (page, done) => {
          if (ac.signal.aborted) return;
          all = all.concat(page);
          loadedAll = done;
          if (!cols) {
            cols = defaultColumns(all);
          }
          if (!table.el.isConnected || table.length === 0) setColumns(cols);
          applyView();
          if (!window.__loupe.tableDrawnAt || window.__loupe.tableDrawnAt < window.__loupe.navStart) {
            requestAnimationFrame(() => {
              window.__loupe.tableDrawnAt = performance.now();
              window.__loupe.tableRows = shown.length;
            });
          }
          if (done) table.el.dataset.loaded = "1";
        },
        ac.signal,
      )
      .catch((e: unknown) => {
        if (ac.signal.aborted) return;
        errEl.textContent = `Could not load runs: ${e instanceof Error ? e.message : String(e)}`;
      });
  }

  const onFilter = debounce(() => {
    const before = JSON.stringify([parsed.status, parsed.tag, parsed.q]);
    parsed = parseFilter(filterText);
    setQuery({ f: filterText });
    if (JSON.stringify([parsed.status, parsed.tag, parsed.q]) !== before) reload();
    else applyView();
  }, 200);
  filterBox.addEventListener("input", () => {
    filterText = filterBox.value;
    onFilter();
  });
  statusBox.addEventListener("change", () => {
    statusSel = statusBox.value;
    setQuery({ status: statusSel });
    reload();
  });

  colsBtn.addEventListener("click", () => {
    if (!picker.hidden) {
      picker.hidden = true;
      return;
    }
    const { series, config } = availableColumns(all);
    const current = new Set(cols ?? []);
    const item = (id: string, label: string) => {
      const box = h("input", { type: "checkbox", value: id });
      box.checked = current.has(id);
      box.addEventListener("change", () => {
        const next = (cols ?? []).filter((c) => c !== id);
        if (box.checked) next.push(id);
        setColumns(next);
        localStorage.setItem(`loupe.cols.${project}`, JSON.stringify(next));
        setQuery({ cols: next.join(",") });
        applyView();
      });
      return h("label.pick", null, box, label);
    };
    picker.replaceChildren(
      h("div.pick-group", null, h("h4", null, "Run"), ...baseColumns().map((c) => item(c.id, c.label))),
      h("div.pick-group", null, h("h4", null, "Metrics"), ...series.slice(0, 200).flatMap((s) => [item(`summary.${s}.last`, `${s} last`), item(`summary.${s}.min`, `${s} min`)])),
      h("div.pick-group", null, h("h4", null, "Config"), ...config.slice(0, 200).map((k) => item(`config.${k}`, k))),
    );
    picker.hidden = false;
  });
  const closePicker = (e: MouseEvent) => {
    if (!picker.hidden && !picker.contains(e.target as Node) && e.target !== colsBtn) picker.hidden = true;
  };
  document.addEventListener("click", closePicker);

  root.append(
    h("div.page-head", null, h("h1", null, project), countEl),
    h("div.toolbar", null, filterBox, statusBox, colsBtn, compareBtn, errEl, picker),
    table.el,
  );
  if (cols) setColumns(cols);

  pageKeys({
    j: () => table.moveCursor(1),
    k: () => table.moveCursor(-1),
    ArrowDown: () => table.moveCursor(1),
    ArrowUp: () => table.moveCursor(-1),
    Enter: () => {
      const r = table.current();
      if (r) navigate(paths.run(r.id));
    },
    x: () => table.toggleCurrent(),
    c: compare,
  });

  // Status changes arrive live: the running marker follows the run.
  const stop = api.live(null, {
    status: (run, data) => {
      const r = all.find((x) => x.id === run);
      if (r && data.status) {
        r.status = data.status;
        table.refresh();
      }
    },
  });
  reload();
  return () => {
    loading?.abort();
    stop();
    document.removeEventListener("click", closePicker);
  };
}
