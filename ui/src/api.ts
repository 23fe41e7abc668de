// The client of Loupe's public HTTP API (`/api/v1`). The UI talks to the
// server through this module only.

import type { components, operations } from "./api.gen";

// The types of the API's bodies are generated from the server's OpenAPI
// document (api.gen.ts); what is declared here is only how the UI holds
// them once read: NaN and ±Inf, which the API sends as strings, as numbers
// (see `num`).
type S = components["schemas"];
type Query<Op extends keyof operations> = NonNullable<operations[Op]["parameters"]["query"]>;
/** `T` with the fields `K` (the API's `Float`s) made plain numbers. */
type Numbers<T, K extends keyof T> = Omit<T, K> & { [P in K]: number };

export type RunStatus = S["RunStatus"];
export type SeriesSummary = Numbers<S["SeriesSummary"], "last" | "min" | "max">;
export type Failure = S["RunFailure"];
export type Run = Omit<S["Run"], "summary"> & { summary: Record<string, SeriesSummary> };
export type Project = S["Project"];
export type SeriesInfo = Numbers<S["SeriesInfo"], "last" | "min" | "max">;
/** One series' points as drawn: x and y with non-finite values as numbers. */
export type SeriesData = Omit<S["SeriesData"], "x" | "y"> & { x: number[]; y: number[] };
export type LogLevel = S["LogLevel"];
export type LogRecord = S["LogEntry"];
export type LogPage = S["LogPage"];
export type SeriesEvidence = Extract<S["Evidence"], { kind: "series" }>;
export type LogEvidence = Extract<S["Evidence"], { kind: "log" }>;
export type Cause = S["Cause"];
export type Anomaly = S["Anomaly"];
export type Incident = S["Incident"];
/** Each cause's rule score and feedback weight, in the ranked order. */
export type FeedbackRanking = S["FeedbackRanking"];
export type Verdict = S["FeedbackVerdict"];
export type FeedbackEntry = S["FeedbackEntry"];
export type ProjectFeedback = S["ProjectFeedback"];
export type Health = S["RunHealth"];

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the UI asked of the server, for the tests and the bench. */
export interface RequestRecord {
  url: string;
  ms: number;
  status: number;
}

export const requestLog: RequestRecord[] = [];

type Params = Record<string, string | number | boolean | null | undefined>;

export function url(path: string, params?: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return `/api/v1${path}${s ? `?${s}` : ""}`;
}

export async function get<T>(path: string, params?: Params, signal?: AbortSignal): Promise<T> {
  const u = url(path, params);
  const t0 = performance.now();
  const res = await fetch(u, { signal, headers: { accept: "application/json" } });
  requestLog.push({ url: u, ms: performance.now() - t0, status: res.status });
  if (requestLog.length > 5000) requestLog.splice(0, 1000);
  if (!res.ok) {
    let code = "http_error";
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new ApiError(res.status, code, message);
  }
  return (await res.json()) as T;
}

/** A JSON value the API uses for a number: NaN and ±Inf arrive as strings. */
export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  if (v === null || v === undefined) return NaN;
  return Number(v);
}

/** The run with its summary's values made numbers (in place: a page holds
 * up to 1000 runs). */
function fixSummary(r: S["Run"]): Run {
  for (const s of Object.values(r.summary ?? {})) {
    const n = s as unknown as SeriesSummary;
    n.last = num(s.last);
    n.min = num(s.min);
    n.max = num(s.max);
  }
  return r as unknown as Run;
}

/** POST/DELETE with a JSON body; errors as `get` reports them. */
export async function send<T>(method: "POST" | "DELETE", path: string, body?: unknown): Promise<T | null> {
  const u = url(path);
  const t0 = performance.now();
  const res = await fetch(u, {
    method,
    headers: body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  requestLog.push({ url: `${method} ${u}`, ms: performance.now() - t0, status: res.status });
  const text = await res.text();
  if (!res.ok) {
    let code = "http_error";
    let message = `${res.status} ${res.statusText}`;
    try {
      const b = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = b.error?.code ?? code;
      message = b.error?.message ?? message;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new ApiError(res.status, code, message);
  }
  return text ? (JSON.parse(text) as T) : null;
}

export async function projects(): Promise<Project[]> {
  return (await get<S["ProjectList"]>("/projects")).projects;
}

export type RunListParams = Omit<Query<"list_runs">, "limit" | "cursor">;

/**
 * Every run matching `p`, page by page: a small first page (so the table
 * paints at once), then pages of 1000. `onPage` sees each page as it lands;
 * aborting stops the walk.
 */
export async function allRuns(
  p: RunListParams,
  onPage: (runs: Run[], done: boolean) => void,
  signal: AbortSignal,
  max = 100_000,
): Promise<void> {
  let cursor: string | null = null;
  let first = true;
  let seen = 0;
  for (;;) {
    const limit = first ? 200 : 1000;
    const page: S["RunPage"] = await get("/runs", { ...p, limit, cursor }, signal);
    first = false;
    const runs = page.runs.map(fixSummary);
    seen += runs.length;
    const done = !page.next_cursor || seen >= max;
    onPage(runs, done);
    if (done) return;
    cursor = page.next_cursor;
  }
}

export async function run(id: string): Promise<Run> {
  return fixSummary(await get<S["Run"]>(`/runs/${encodeURIComponent(id)}`));
}

function fixSeriesInfo(s: S["SeriesInfo"]): SeriesInfo {
  return { ...s, last: num(s.last), min: num(s.min), max: num(s.max) };
}

/** Every page of a series listing: the server answers one page at a time. */
async function allSeries(path: string, params: Params): Promise<SeriesInfo[]> {
  const out: SeriesInfo[] = [];
  let cursor: string | null = null;
  do {
    const r: S["SeriesList"] = await get<S["SeriesList"]>(path, { ...params, limit: 10000, cursor });
    for (const s of r.series) out.push(fixSeriesInfo(s));
    cursor = r.next_cursor ?? null;
  } while (cursor);
  return out;
}

export async function runSeries(id: string): Promise<SeriesInfo[]> {
  return allSeries(`/runs/${encodeURIComponent(id)}/series`, {});
}

export async function hostSeries(project: string, labels: Record<string, string>): Promise<SeriesInfo[]> {
  const params: Params = { project };
  for (const [k, v] of Object.entries(labels)) params[`label.${k}`] = v;
  return allSeries("/metrics/series", params);
}

export type DataQuery = Pick<Query<"series_data">, "width" | "from" | "to" | "limit"> & { x: "step" | "time" };

function fixData(d: S["SeriesData"]): SeriesData {
  const n = d.x.length;
  const x = new Array<number>(n);
  const y = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    x[i] = num(d.x[i]);
    const v = d.y[i];
    y[i] = typeof v === "number" ? v : num(v);
  }
  return { ...d, x, y };
}

/** A run series' points: M4 over `width` pixel columns, or raw with `limit`. */
export async function seriesData(
  run: string,
  name: string,
  q: DataQuery,
  signal?: AbortSignal,
): Promise<SeriesData> {
  const d = await get<S["SeriesData"]>(
    `/runs/${encodeURIComponent(run)}/series/data`,
    { name, ...q },
    signal,
  );
  return fixData(d);
}

/** A host or GPU series (outside runs), named by its labels. */
export async function hostSeriesData(
  project: string,
  name: string,
  labels: Record<string, string>,
  q: DataQuery,
  signal?: AbortSignal,
): Promise<SeriesData> {
  const params: Params = { project, name, ...q };
  for (const [k, v] of Object.entries(labels)) params[`label.${k}`] = v;
  const d = await get<S["SeriesData"]>("/metrics/data", params, signal);
  return fixData(d);
}

export type LogQuery = Query<"get_logs">;

export async function logs(run: string, q: LogQuery, signal?: AbortSignal): Promise<LogPage> {
  return get<LogPage>(`/runs/${encodeURIComponent(run)}/logs`, { ...q }, signal);
}

/** Incidents, or null while the server has no diagnosis endpoints (404). */
export async function runIncidents(run: string): Promise<Incident[] | null> {
  try {
    return (await get<S["IncidentPage"]>(`/runs/${encodeURIComponent(run)}/incidents`)).incidents;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

export async function incidents(p: {
  project?: string;
  state?: "open" | "resolved";
  run?: string;
  host?: string;
  limit?: number;
}): Promise<Incident[] | null> {
  try {
    return (await get<S["IncidentPage"]>("/incidents", p)).incidents;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

export async function runHealth(run: string): Promise<Health | null> {
  try {
    return await get<Health>(`/runs/${encodeURIComponent(run)}/health`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

export interface LiveHandlers {
  points?: (run: string, data: Record<string, S["LivePoint"]>) => void;
  logs?: (run: string, data: S["LiveLogs"]) => void;
  status?: (run: string, data: S["LiveStatus"]) => void;
  incident?: (run: string, data: Incident) => void;
  alert?: (run: string, data: Alert) => void;
  /** The stream is connected (again, after a reconnect). */
  open?: () => void;
}

/** Subscribes to `/api/v1/live` (one run, or all); returns the closer. */
export function live(run: string | null, h: LiveHandlers): () => void {
  const es = new EventSource(url("/live", { run }));
  const on = <K extends Exclude<keyof LiveHandlers, "open">>(kind: K) => {
    const f = h[kind];
    if (!f) return;
    es.addEventListener(kind, (ev) => {
      try {
        // A `LiveEvent` (the generated types say what each kind's data holds).
        const msg = JSON.parse((ev as MessageEvent<string>).data) as { run: string; data: never };
        (f as (r: string, d: never) => void)(msg.run, msg.data);
      } catch {
        // A malformed event is skipped; the next one carries fresh state.
      }
    });
  };
  on("points");
  on("logs");
  on("status");
  on("incident");
  on("alert");
  if (h.open) es.addEventListener("open", h.open);
  return () => es.close();
}

export type AlertState = S["AlertState"];
export type Severity = S["Severity"];
/** One alert: a rule and a label set through its life (times in Unix seconds). */
export type Alert = Omit<S["Alert"], "value"> & { value: number | null };
/** A queued notification: `pending` (retrying), `delivered`, or `failed` (given up). */
export type Delivery = S["Delivery"];
export type ChannelCounts = S["ChannelCounts"];
export type AlertsView = Omit<S["AlertsView"], "alerts"> & { alerts: Alert[] };
/** A rule as the rules file or the API gave it; fields depend on `kind`. */
export type RuleSpec = S["RuleSpec"];
export type RuleEntry = S["RuleEntry"];
export type Silence = S["Silence"];

function fixAlert(a: S["Alert"]): Alert {
  return { ...a, value: a.value === null || a.value === undefined ? null : num(a.value) };
}

export async function alerts(): Promise<AlertsView> {
  const v = await get<S["AlertsView"]>("/alerts");
  return { ...v, alerts: v.alerts.map(fixAlert) };
}

export async function alertRules(): Promise<RuleEntry[]> {
  return (await get<S["RuleList"]>("/alerts/rules")).rules;
}

export async function silences(): Promise<Silence[]> {
  return (await get<S["SilenceList"]>("/silences")).silences;
}

export async function createSilence(s: S["NewSilence"]): Promise<Silence> {
  const r = await send<Silence>("POST", "/silences", s);
  if (!r) throw new ApiError(500, "empty", "the server answered without the silence");
  return r;
}

export async function expireSilence(id: string): Promise<void> {
  await send("DELETE", `/silences/${encodeURIComponent(id)}`);
}

/** An `alert` live event's alert, with its value made a number. */
export function liveAlert(a: S["Alert"]): Alert {
  return fixAlert(a);
}

/** The verdicts users gave on an incident's causes and fixes, oldest first. */
export async function incidentFeedback(id: string): Promise<FeedbackEntry[]> {
  return (await get<S["IncidentFeedback"]>(`/incidents/${encodeURIComponent(id)}/feedback`)).feedback;
}

/** Marks a cause confirmed or wrong, or one of its fixes as the one that worked. */
export async function sendFeedback(id: string, v: S["FeedbackRequest"]): Promise<FeedbackEntry> {
  const r = await send<FeedbackEntry>("POST", `/incidents/${encodeURIComponent(id)}/feedback`, v);
  if (!r) throw new ApiError(500, "empty", "the server answered without the stored verdict");
  return r;
}

/** A project's feedback weights and newest verdicts. */
export async function projectFeedback(project: string): Promise<ProjectFeedback> {
  return get<ProjectFeedback>(`/projects/${encodeURIComponent(project)}/feedback`);
}
