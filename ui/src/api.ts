// The client of Loupe's public HTTP API (`/api/v1`). The UI talks to the
// server through this module only.

export type RunStatus = "running" | "finished" | "failed" | "crashed" | "killed" | "lost";

export interface SeriesSummary {
  last: number;
  min: number;
  max: number;
  count: number;
  last_step: number | null;
}

export interface Failure {
  exception_type?: string | null;
  message?: string | null;
  signal?: string | number | null;
  stderr_tail?: string[];
  traceback?: string | null;
}

export interface Run {
  id: string;
  project: string;
  name: string;
  group: string | null;
  rank: number | null;
  world_size: number | null;
  tags: string[];
  config: unknown;
  status: RunStatus;
  host: string | null;
  command: string | null;
  git_commit: string | null;
  notes: string | null;
  start_time: number;
  heartbeat_time: number;
  end_time: number | null;
  exit_code: number | null;
  summary: Record<string, SeriesSummary>;
  resumes: number;
  // Arriving with the diagnosis work; absent on older servers.
  health?: number | null;
  open_incidents?: number;
  /** Every incident that touched the run, open or resolved. */
  total_incidents?: number;
  cwd?: string | null;
  git_dirty?: boolean | null;
  failure?: Failure | null;
}

export interface Project {
  name: string;
  runs: number;
  running: number;
  // Arriving with the first-hour work; absent on older servers.
  failed?: number;
  open_incidents?: number;
  incidents?: number;
  last_activity?: number | null;
}

export interface SeriesInfo {
  name: string;
  count: number;
  first_step: number | null;
  last_step: number | null;
  first_time: number;
  last_time: number;
  last: number;
  min: number;
  max: number;
  labels?: Record<string, string>;
}

/** One series' points as drawn: x and y with non-finite values as numbers. */
export interface SeriesData {
  x: number[];
  y: number[];
  count: number;
  downsampled: boolean;
  time_ns?: number[];
  step?: (number | null)[];
  next_cursor?: string | null;
}

export type LogLevel = "debug" | "info" | "warning" | "error" | "critical";

export interface LogRecord {
  seq: number;
  time: number;
  stream: "stdout" | "stderr" | "app";
  level: LogLevel;
  text: string;
  attributes?: Record<string, string>;
}

export interface LogPage {
  records: LogRecord[];
  next_cursor: string | null;
}

export interface SeriesEvidence {
  kind: "series";
  run: string;
  series: string;
  step: number | null;
  time: number | null;
  value: number | string | null;
  detail: string;
}

export interface LogEvidence {
  kind: "log";
  run: string;
  seq: number;
  time: number;
  text: string;
}

export interface Cause {
  kind: string;
  title: string;
  score: number;
  explanation: string;
  fixes: string[];
  evidence: (SeriesEvidence | LogEvidence)[];
}

export interface Anomaly {
  run: string;
  series: string;
  detector: string;
  start_step: number | null;
  end_step: number | null;
  start_time: number;
  end_time: number | null;
  score: number;
  detail: string;
}

export interface Incident {
  id: string;
  project: string;
  run: string | null;
  group: string | null;
  host: string | null;
  state: "open" | "resolved";
  severity: "critical" | "warning" | "info";
  kind: string;
  title: string;
  opened: number;
  updated: number;
  resolved: number | null;
  start_time: number;
  end_time: number | null;
  start_step: number | null;
  end_step: number | null;
  causes: Cause[];
  anomalies: Anomaly[];
  /** Every run it touches (a job's incident: the ranks involved). */
  runs?: string[];
  /** How the project's feedback re-ranked the causes; absent when none applied. */
  feedback?: FeedbackRanking;
}

/** Each cause's rule score and feedback weight, in the ranked order. */
export interface FeedbackRanking {
  causes: { kind: string; rule_score: number; weight: number; ranked_score: number }[];
  fixes_reordered: number;
}

export type Verdict = "confirmed" | "wrong" | "worked";

export interface FeedbackEntry {
  id: number;
  project: string;
  incident: string;
  cause: string;
  fix: string | null;
  verdict: Verdict;
  who: string;
  time: number;
}

export interface ProjectFeedback {
  project: string;
  causes: { cause: string; confirmed: number; wrong: number; weight: number }[];
  fixes: { cause: string; fix: string; worked: number; weight: number }[];
  feedback: FeedbackEntry[];
}

export interface Health {
  score: number;
  breakdown: { indicator: string; penalty: number; detail: string }[];
}

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

function fixSummary(r: Run): Run {
  for (const s of Object.values(r.summary ?? {})) {
    s.last = num(s.last);
    s.min = num(s.min);
    s.max = num(s.max);
  }
  return r;
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
  return (await get<{ projects: Project[] }>("/projects")).projects;
}

export interface RunListParams {
  project?: string;
  status?: string;
  tag?: string;
  q?: string;
  sort?: string;
}

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
    const page: { runs: Run[]; next_cursor: string | null } = await get(
      "/runs",
      { ...p, limit, cursor },
      signal,
    );
    first = false;
    page.runs.forEach(fixSummary);
    seen += page.runs.length;
    const done = !page.next_cursor || seen >= max;
    onPage(page.runs, done);
    if (done) return;
    cursor = page.next_cursor;
  }
}

export async function run(id: string): Promise<Run> {
  return fixSummary(await get<Run>(`/runs/${encodeURIComponent(id)}`));
}

function fixSeriesInfo(s: SeriesInfo): SeriesInfo {
  s.last = num(s.last);
  s.min = num(s.min);
  s.max = num(s.max);
  return s;
}

export async function runSeries(id: string): Promise<SeriesInfo[]> {
  const r = await get<{ series: SeriesInfo[] }>(`/runs/${encodeURIComponent(id)}/series`);
  return r.series.map(fixSeriesInfo);
}

export async function hostSeries(project: string, labels: Record<string, string>): Promise<SeriesInfo[]> {
  const params: Params = { project };
  for (const [k, v] of Object.entries(labels)) params[`label.${k}`] = v;
  const r = await get<{ series: SeriesInfo[] }>("/metrics/series", params);
  return r.series.map(fixSeriesInfo);
}

export interface DataQuery {
  x: "step" | "time";
  width?: number;
  from?: number;
  to?: number;
  limit?: number;
}

function fixData(d: { x: unknown[]; y: unknown[] } & Omit<SeriesData, "x" | "y">): SeriesData {
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
  const d = await get<{ x: unknown[]; y: unknown[] } & SeriesData>(
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
  const d = await get<{ x: unknown[]; y: unknown[] } & SeriesData>("/metrics/data", params, signal);
  return fixData(d);
}

export interface LogQuery {
  q?: string;
  level?: string;
  stream?: string;
  from?: number;
  to?: number;
  limit?: number;
  cursor?: string | null;
}

export async function logs(run: string, q: LogQuery, signal?: AbortSignal): Promise<LogPage> {
  return get<LogPage>(`/runs/${encodeURIComponent(run)}/logs`, { ...q }, signal);
}

/** Incidents, or null while the server has no diagnosis endpoints (404). */
export async function runIncidents(run: string): Promise<Incident[] | null> {
  try {
    return (await get<{ incidents: Incident[] }>(`/runs/${encodeURIComponent(run)}/incidents`)).incidents;
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
    return (await get<{ incidents: Incident[] }>("/incidents", p)).incidents;
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
  points?: (run: string, data: Record<string, { count: number; last_step: number | null; last: unknown }>) => void;
  logs?: (run: string, data: { count: number; records: LogRecord[] }) => void;
  status?: (run: string, data: { status: RunStatus }) => void;
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

export type AlertState = "pending" | "firing" | "resolved";
export type Severity = "info" | "warning" | "critical";

/** One alert: a rule and a label set through its life (times in Unix seconds). */
export interface Alert {
  id: string;
  rule: string;
  severity: Severity;
  state: AlertState;
  /** The condition's labels plus `alertname` and `severity`. */
  labels: Record<string, string>;
  summary: string;
  value: number | null;
  series: string | null;
  active_since: number;
  fired_at: number | null;
  resolved_at: number | null;
  updated: number;
  last_sent: number | null;
  silenced_by: string | null;
  inhibited_by: string | null;
}

/** A queued notification: `pending` (retrying), `delivered`, or `failed` (given up). */
export interface Delivery {
  seq: number;
  id: string;
  channel: string;
  state: "pending" | "delivered" | "failed";
  attempts: number;
  created: number;
  next_attempt: number;
  delivered: number | null;
  last_error: string | null;
  title: string;
}

export interface ChannelCounts {
  pending: number;
  delivered: number;
  failed: number;
}

export interface AlertsView {
  alerts: Alert[];
  notifications: Delivery[];
  channels: Record<string, ChannelCounts>;
}

/** A rule as the rules file or the API gave it; fields depend on `kind`. */
export interface RuleSpec {
  name: string;
  kind: string;
  severity?: string;
  for?: string;
  channels?: string[];
  summary?: string;
  expr?: string;
  labels?: Record<string, string>;
  states?: string[];
  min_severity?: string;
  causes?: string[];
  project?: string;
  run?: string;
  group?: string;
  errors?: string;
  total?: string;
  objective?: number;
  [k: string]: unknown;
}

export interface RuleEntry {
  source: "builtin" | "file" | "api";
  rule: RuleSpec;
}

export interface Silence {
  id: string;
  matchers: Record<string, string>;
  starts: number;
  ends: number;
  comment: string;
  created_by: string | null;
}

function fixAlert(a: Alert): Alert {
  a.value = a.value === null || a.value === undefined ? null : num(a.value);
  return a;
}

export async function alerts(): Promise<AlertsView> {
  const v = await get<AlertsView>("/alerts");
  v.alerts.forEach(fixAlert);
  return v;
}

export async function alertRules(): Promise<RuleEntry[]> {
  return (await get<{ rules: RuleEntry[] }>("/alerts/rules")).rules;
}

export async function silences(): Promise<Silence[]> {
  return (await get<{ silences: Silence[] }>("/silences")).silences;
}

export async function createSilence(s: { matchers: Record<string, string>; duration: string; comment: string }): Promise<Silence> {
  const r = await send<Silence>("POST", "/silences", s);
  if (!r) throw new ApiError(500, "empty", "the server answered without the silence");
  return r;
}

export async function expireSilence(id: string): Promise<void> {
  await send("DELETE", `/silences/${encodeURIComponent(id)}`);
}

/** An `alert` live event's alert, with its value made a number. */
export function liveAlert(a: Alert): Alert {
  return fixAlert(a);
}

/** The verdicts users gave on an incident's causes and fixes, oldest first. */
export async function incidentFeedback(id: string): Promise<FeedbackEntry[]> {
  return (await get<{ feedback: FeedbackEntry[] }>(`/incidents/${encodeURIComponent(id)}/feedback`)).feedback;
}

/** Marks a cause confirmed or wrong, or one of its fixes as the one that worked. */
export async function sendFeedback(id: string, v: { cause: string; verdict: Verdict; fix?: string }): Promise<FeedbackEntry> {
  const r = await send<FeedbackEntry>("POST", `/incidents/${encodeURIComponent(id)}/feedback`, v);
  if (!r) throw new ApiError(500, "empty", "the server answered without the stored verdict");
  return r;
}

/** A project's feedback weights and newest verdicts. */
export async function projectFeedback(project: string): Promise<ProjectFeedback> {
  return get<ProjectFeedback>(`/projects/${encodeURIComponent(project)}/feedback`);
}
