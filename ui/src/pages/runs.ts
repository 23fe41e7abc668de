// The runs table of a project: every run (paged in from the API, 1000 at a
// time after a small first page), filtered and sorted in the browser so a
// sort of 10k runs is one array sort, drawn by a virtualised table.

import * as api from "../api";
import type { Incident, Run } from "../api";
import { matches, parseFilter, type ParsedFilter } from "../filter";
import { fmtSeriesValue } from "../format";
import { pageKeys } from "../keys";
import { navigate, paths, setQuery, type Route } from "../router";
import { type Column, VTable } from "../table";
import { debounce, flatten, fmtDuration, fmtNum, fmtValue, h, runDuration, statusBadge, timeEl } from "../util";
import { notFound } from "./empty";
import { failureReason, jobSentence, summarizeJob, type JobSummary } from "./job";

/** A job's row: its ranks folded into one line (W&B's grouping). */
export interface JobRow {
  kind: "job";
  key: string;
  job: JobSummary;
  /** Incidents of the job, each counted once however many ranks it touches. */
  open: number;
  total: number;
  expanded: boolean;
}

/** A row of the table: a run (alone, or a rank under its expanded job) or a job. */
export type Row = Run | JobRow;

export function isJob(r: Row): r is JobRow {
  return (r as JobRow).kind === "job";
}

const JOB_KEY = "job::";

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
      // Open incidents first, then how many there were in all.
      return r.open_incidents === undefined ? null : r.open_incidents * 1e6 + (r.total_incidents ?? r.open_incidents);
    case "failure":
      return failureReason(r);
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

function incidentCell(open: number | undefined, total: number | undefined): HTMLElement {
  if (open === undefined) return h("span.muted", null, "–");
  const all = total ?? open;
  return h(
    "span.inc-cell",
    { title: `${open} open, ${all} in all (resolved ones included)` },
    h(open ? "b.inc-count" : "span.muted", null, String(open)),
    h("span.muted", null, ` / ${all}`),
  );
}

function healthCell(v: number | null | undefined): HTMLElement {
  return v === undefined || v === null ? h("span.muted", null, "–") : h("span", { class: `health h${Math.min(3, Math.floor(v / 25))}` }, fmtNum(Math.round(v)));
}

/** The fixed columns; each renders a run and a job row. */
function baseColumns(toggle: (group: string) => void): Column<Row>[] {
  const jobStart = (j: JobSummary) => Math.min(...j.ranks.map((r) => r.start_time));
  const jobDuration = (j: JobSummary) => Math.max(...j.ranks.map((r) => runDuration(r))) + Math.max(...j.ranks.map((r) => r.start_time)) - jobStart(j);
  return [
    { id: "status", label: "Status", width: 104, render: (r) => statusBadge(isJob(r) ? r.job.status : r.status) },
    {
      id: "name",
      label: "Name",
      width: 240,
      render: (r) => {
        if (isJob(r)) {
          const btn = h("button.tiny.caret", { title: r.expanded ? "Fold the ranks" : "Show the ranks", "aria-expanded": String(r.expanded), "data-job": r.job.group }, r.expanded ? "▾" : "▸");
          btn.addEventListener("click", (e) => {
            e.stopPropagation();
            toggle(r.job.group);
          });
          return h("span.job-name", null, btn, h("a.job-link", { href: paths.runs(r.job.ranks[0].project, { job: r.job.group }), title: `job ${r.job.group}: every rank` }, r.job.group), h("span.muted", null, ` ${r.job.ranks.length} ranks`));
        }
        const link = h("a.run-link", { href: paths.run(r.id), title: `${r.name} (${r.id})` }, r.name);
        return r.group && r.rank !== null ? h("span.rank-name", null, h("span.muted", null, `rank ${r.rank} `), link) : link;
      },
    },
    {
      id: "start_time",
      label: "Started",
      width: 130,
      render: (r) => {
        const t = isJob(r) ? jobStart(r.job) : r.start_time;
        return timeEl(t, "ago");
      },
    },
    { id: "duration", label: "Duration", width: 90, align: "right", render: (r) => fmtDuration(isJob(r) ? jobDuration(r.job) : runDuration(r)) },
    {
      id: "host",
      label: "Host / ranks",
      width: 140,
      render: (r) => {
        if (isJob(r)) {
          const hosts = new Set(r.job.ranks.map((x) => x.host).filter(Boolean));
          return `${hosts.size} host${hosts.size === 1 ? "" : "s"} · ${r.job.ranks.length} ranks`;
        }
        return `${r.host ?? ""}${r.world_size && r.world_size > 1 ? ` · ${r.rank ?? "?"}/${r.world_size}` : ""}`;
      },
    },
    { id: "tags", label: "Tags", width: 130, render: (r) => h("span", null, ...(isJob(r) ? r.job.ranks[0].tags : r.tags).map((t) => h("span.tag", null, t))) },
    { id: "health", label: "Health", width: 70, align: "right", title: "Health (a job: its sickest rank)", render: (r) => healthCell(isJob(r) ? r.job.health : r.health) },
    {
      id: "incidents",
      label: "Incidents",
      width: 84,
      align: "right",
      title: "Open / all incidents (resolved ones included); a job's incident counts once",
      render: (r) => (isJob(r) ? incidentCell(r.open, r.total) : incidentCell(r.open_incidents, r.total_incidents)),
    },
    {
      id: "failure",
      label: "Why it failed",
      width: 300,
      title: "What the failing rank or run reported",
      render: (r) => {
        const text = isJob(r) ? jobSentence(r.job) : failureReason(r);
        return text ? h("span.why", { title: text }, text) : "";
      },
    },
  ];
}

/** A run-only column as a table column: job rows leave it empty. */
function runOnly(c: Column<Run>): Column<Row> {
  return { ...c, render: (r) => (isJob(r) ? "" : c.render(r)) };
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
        return v === undefined ? "" : h("span", { class: Number.isFinite(v) ? "" : "nonfinite", title: String(v) }, fmtSeriesValue(v, series));
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
  const base = baseColumns(() => undefined).map((c) => c.id);
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
  // `job=X`: the job view, its ranks only and unfolded; `group=0`: no grouping.
  const onlyJob = q.get("job");
  let grouping = q.get("group") !== "0";
  const expanded = new Set<string>(onlyJob ? [onlyJob] : []);
  let all: Run[] = [];
  let shown: Run[] = [];
  let rows: Row[] = [];
  /** Per job: its open and total incidents, each counted once. */
  let jobIncidents = new Map<string, { open: number; total: number }>();
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
  const filterErrEl = h("div.filter-errors");
  const compareBtn = h("button.primary", { disabled: true, title: "Compare the selected runs (c)" }, "Compare");
  const colsBtn = h("button", { title: "Choose columns", "aria-haspopup": "true" }, "Columns");
  const picker = h("div.popover", { hidden: true });

  const toggleJob = (group: string) => {
    if (expanded.has(group)) expanded.delete(group);
    else expanded.add(group);
    applyView();
  };

  const table = new VTable<Row>({
    columns: [],
    key: (r) => (isJob(r) ? JOB_KEY + r.job.group : r.id),
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
    onOpen: (r) => (isJob(r) ? toggleJob(r.job.group) : navigate(paths.run(r.id))),
    onSelect: () => {
      for (const k of [...selected]) if (k.startsWith(JOB_KEY)) selected.delete(k);
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
    const base = new Map(baseColumns(toggleJob).map((c) => [c.id, c]));
    table.setColumns(
      ids
        .map((id) => {
          const b = base.get(id);
          if (b) return b;
          const d = dynamicColumn(id);
          return d ? runOnly(d) : null;
        })
        .filter((c): c is Column<Row> => c !== null),
    );
  }

  /**
   * Sorted runs → rows: a job's ranks fold into one row at the place of its
   * first rank in the sort order (so sorting by loss puts the job where its
   * best rank is), its ranks below it when unfolded. One pass: 10k runs
   * without jobs cost one Map lookup each.
   */
  function groupRows(sorted: Run[]): Row[] {
    if (!grouping) return sorted;
    const members = new Map<string, Run[]>();
    for (const r of sorted) {
      if (!r.group) continue;
      const list = members.get(r.group);
      if (list) list.push(r);
      else members.set(r.group, [r]);
    }
    if (!members.size) return sorted;
    const out: Row[] = [];
    const emitted = new Set<string>();
    for (const r of sorted) {
      const list = r.group ? members.get(r.group) : undefined;
      if (!list || list.length < 2) {
        out.push(r);
        continue;
      }
      if (emitted.has(r.group!)) continue;
      emitted.add(r.group!);
      const job = summarizeJob(r.group!, list);
      const counted = jobIncidents.get(r.group!);
      // Without the incident list, a job's count is its most-touched rank's (a job incident links every rank).
      const open = counted?.open ?? Math.max(...list.map((x) => x.open_incidents ?? 0));
      const total = counted?.total ?? Math.max(...list.map((x) => x.total_incidents ?? x.open_incidents ?? 0));
      const isOpen = expanded.has(r.group!);
      out.push({ kind: "job", key: JOB_KEY + r.group!, job, open, total, expanded: isOpen });
      if (isOpen) out.push(...job.ranks);
    }
    return out;
  }

  function applyView(): void {
    const cmps = parsed.comparisons;
    const base = onlyJob ? all.filter((r) => r.group === onlyJob) : all;
    shown = cmps.length ? base.filter((r) => matches(r, cmps, flatConfig(r))) : base.slice();
    sortRuns(shown, sort.col, sort.desc);
    rows = groupRows(shown);
    table.setRows(rows);
    const jobCount = rows.filter(isJob).length;
    countEl.textContent = `${shown.length.toLocaleString()}${shown.length !== all.length ? ` of ${all.length.toLocaleString()}` : ""} runs${jobCount ? ` · ${jobCount} job${jobCount === 1 ? "" : "s"}` : ""}${loadedAll ? "" : " (loading…)"}`;
  }

  /** Counts each job's incidents once (a job incident is linked to every rank). */
  async function loadJobIncidents(): Promise<void> {
    const list: Incident[] | null = await api.incidents({ project, limit: 1000 }).catch(() => null);
    if (!list) return;
    const m = new Map<string, { open: number; total: number }>();
    for (const inc of list) {
      if (!inc.group) continue;
      const c = m.get(inc.group) ?? { open: 0, total: 0 };
      c.total++;
      if (inc.state === "open") c.open++;
      m.set(inc.group, c);
    }
    jobIncidents = m;
    if (m.size) applyView();
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
          if (done) {
            table.el.dataset.loaded = "1";
            if (!all.length && !parsed.q && !parsed.status && !parsed.tag && !statusSel) void checkProject();
            else void loadJobIncidents();
          }
        },
        ac.signal,
      )
      .catch((e: unknown) => {
        if (ac.signal.aborted) return;
        errEl.textContent = `Could not load runs: ${e instanceof Error ? e.message : String(e)}`;
      });
  }

  /** A project with no runs and no filter may not exist at all: say so, with a way back. */
  async function checkProject(): Promise<void> {
    const known = await api.projects().catch(() => null);
    if (!known || known.some((p) => p.name === project)) return;
    root.replaceChildren(notFound("project", project));
  }

  /** Where the filter does not parse, and why: the text with the bad part marked. */
  function showFilterErrors(): void {
    filterBox.setAttribute("aria-invalid", String(parsed.errors.length > 0));
    filterErrEl.replaceChildren(
      ...parsed.errors.map((e) =>
        h(
          "div.filter-error",
          { role: "alert" },
          h("code", null, filterText.slice(0, e.at), h("mark", null, filterText.slice(e.at, e.at + e.length) || " "), filterText.slice(e.at + e.length)),
          h("span", null, ` at character ${e.at + 1}: ${e.message}`),
        ),
      ),
    );
  }

  const onFilter = debounce(() => {
    const before = JSON.stringify([parsed.status, parsed.tag, parsed.q]);
    parsed = parseFilter(filterText);
    showFilterErrors();
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

  const groupBox = h("input", { type: "checkbox", "aria-label": "group runs by job" });
  groupBox.checked = grouping;
  groupBox.addEventListener("change", () => {
    grouping = groupBox.checked;
    setQuery({ group: grouping ? null : 0 });
    applyView();
  });
  const groupLabel = h("label.check", { title: "Fold the ranks of a distributed job into one row" }, groupBox, "group by job");

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
      h("div.pick-group", null, h("h4", null, "Run"), ...baseColumns(toggleJob).map((c) => item(c.id, c.label))),
      h("div.pick-group", null, h("h4", null, "Metrics"), ...series.slice(0, 200).flatMap((s) => [item(`summary.${s}.last`, `${s} last`), item(`summary.${s}.min`, `${s} min`)])),
      h("div.pick-group", null, h("h4", null, "Config"), ...config.slice(0, 200).map((k) => item(`config.${k}`, k))),
    );
    picker.hidden = false;
  });
  const closePicker = (e: MouseEvent) => {
    if (!picker.hidden && !picker.contains(e.target as Node) && e.target !== colsBtn) picker.hidden = true;
  };
  document.addEventListener("click", closePicker);

  showFilterErrors();
  root.append(
    h("div.page-head", null, h("h1", null, project), onlyJob ? h("span.job-head", null, " · job ", h("b", null, onlyJob), " ", h("a", { href: paths.runs(project) }, "all runs")) : null, countEl),
    h("div.toolbar", null, filterBox, statusBox, groupLabel, colsBtn, compareBtn, errEl, picker),
    filterErrEl,
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
      if (r) {
        if (isJob(r)) toggleJob(r.job.group);
        else navigate(paths.run(r.id));
      }
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
