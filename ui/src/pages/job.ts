// A distributed job (a run group) as one thing: its status, health and
// incidents from its ranks, which rank failed first and why, and the banner
// each rank's page shows ("rank 5 ran out of GPU memory at step 518; the
// other 7 ranks were stopped").

import type { Incident, Run, RunStatus } from "../api";
import { paths } from "../router";
import { h } from "../util";

const BAD: RunStatus[] = ["failed", "crashed", "killed", "lost"];

/** A run's last step: the highest `last_step` over its series. */
export function lastStep(r: Run): number | null {
  let best: number | null = null;
  for (const s of Object.values(r.summary ?? {})) {
    if (s.last_step !== null && s.last_step !== undefined && (best === null || s.last_step > best)) best = s.last_step;
  }
  return best;
}

/** Whether a run's failure says anything (an all-empty one is no failure to show). */
export function hasFailure(r: Run): boolean {
  const f = r.failure;
  return !!f && !!(f.exception_type || f.message || f.signal || f.traceback || f.stderr_tail?.length);
}

/** What went wrong, in words: "ran out of GPU memory", "raised ValueError: …", "was killed by SIGKILL". */
export function failureReason(r: Run): string | null {
  const f = r.failure;
  const text = `${f?.exception_type ?? ""} ${f?.message ?? ""}`;
  if (/out ?of ?memory|OutOfMemory|\bOOM\b/i.test(text)) return /cuda|gpu/i.test(text) ? "ran out of GPU memory" : "ran out of memory";
  if (f?.exception_type) return `raised ${f.exception_type}${f.message ? `: ${short(f.message, 80)}` : ""}`;
  if (f?.message) return `failed: ${short(f.message, 80)}`;
  if (f?.signal !== null && f?.signal !== undefined) return `was killed by signal ${f.signal}`;
  if (r.status === "lost") return "stopped reporting (lost)";
  if (BAD.includes(r.status) && r.exit_code !== null && r.exit_code !== 0) return `exited with code ${r.exit_code}`;
  return null;
}

function short(s: string, n: number): string {
  const line = s.split("\n")[0];
  return line.length > n ? `${line.slice(0, n - 1)}…` : line;
}

export interface JobSummary {
  group: string;
  ranks: Run[];
  status: RunStatus;
  /** The lowest health of its ranks: a job is as healthy as its sickest rank. */
  health: number | null;
  /** The rank that failed first with a reason of its own. */
  culprit: Run | null;
  reason: string | null;
  /** Ranks that ended badly without a failure of their own (torn down with the job). */
  stopped: Run[];
}

/**
 * The job's status: running while any rank runs; otherwise the worst end
 * (failed/crashed/killed/lost before finished).
 */
export function summarizeJob(group: string, ranks: Run[]): JobSummary {
  const sorted = [...ranks].sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0) || a.id.localeCompare(b.id));
  let status: RunStatus = "finished";
  if (sorted.some((r) => r.status === "running")) status = "running";
  else for (const s of ["crashed", "failed", "killed", "lost"] as RunStatus[]) if (sorted.some((r) => r.status === s)) {
    status = s;
    break;
  }
  const healths = sorted.map((r) => r.health).filter((x): x is number => typeof x === "number");
  const failing = sorted.filter((r) => BAD.includes(r.status));
  // The culprit: a rank with a failure of its own, the earliest to end.
  const withOwn = failing.filter(hasFailure).sort((a, b) => (a.end_time ?? Infinity) - (b.end_time ?? Infinity));
  const culprit = withOwn[0] ?? (failing.length === 1 ? failing[0] : null);
  return {
    group,
    ranks: sorted,
    status,
    health: healths.length ? Math.min(...healths) : null,
    culprit,
    reason: culprit ? failureReason(culprit) : null,
    stopped: failing.filter((r) => r !== culprit && !hasFailure(r)),
  };
}

/** "rank 5 ran out of GPU memory at step 518; the other 7 ranks were stopped". */
export function jobSentence(j: JobSummary): string | null {
  const c = j.culprit;
  if (!c) {
    if (j.status === "running" || j.status === "finished") return null;
    return `${j.stopped.length} of ${j.ranks.length} ranks ended ${j.status} without reporting why`;
  }
  const step = lastStep(c);
  const who = c.rank !== null ? `rank ${c.rank}` : c.name;
  let s = `${who} ${j.reason ?? `ended ${c.status}`}${step !== null ? ` at step ${step}` : ""}`;
  const others = j.ranks.length - 1;
  if (others > 0) {
    const still = j.ranks.filter((r) => r !== c && r.status === "running").length;
    const stopped = j.stopped.length;
    if (stopped === others) s += `; the other ${others} rank${others === 1 ? " was" : "s were"} stopped`;
    else if (still === others) s += `; the other ${others} rank${others === 1 ? " is" : "s are"} still running`;
    else if (stopped) s += `; ${stopped} other rank${stopped === 1 ? " was" : "s were"} stopped`;
  }
  return s;
}

/** The banner on a rank's page: what happened to the whole job, linking the culprit. */
export function jobBanner(run: Run, j: JobSummary): HTMLElement | null {
  const text = jobSentence(j);
  if (!text || j.ranks.length < 2) return null;
  const c = j.culprit;
  return h(
    "div.job-banner",
    { class: `st-${j.status}`, role: "status", "data-job": j.group },
    h("b", null, `Job ${j.group}: `),
    text,
    ". ",
    c && c.id !== run.id ? h("a", { href: paths.run(c.id) }, `Open rank ${c.rank ?? c.name}`) : c ? h("span.muted", null, "This is that rank.") : null,
    " ",
    h("a", { href: paths.runs(run.project, { job: j.group }) }, `All ${j.ranks.length} ranks`),
  );
}

/** Incidents that belong to a job (not to one run): shown once, with the ranks they touch. */
export function isJobIncident(inc: Incident): boolean {
  return !!inc.group && !inc.run;
}

/** The ranks an incident involves: from its runs and its anomalies' runs, as rank numbers when known. */
export function ranksInvolved(inc: Incident, byId: Map<string, Run>): string[] {
  const ids = new Set<string>(inc.runs ?? []);
  for (const a of inc.anomalies) if (a.run) ids.add(a.run);
  for (const c of inc.causes) for (const e of c.evidence) if (e.run) ids.add(e.run);
  const ranks = [...ids].map((id) => byId.get(id)).filter((r): r is Run => !!r);
  // Only the ranks with evidence or anomalies are "involved"; a job incident links every rank.
  const evidenced = new Set<string>();
  for (const a of inc.anomalies) if (a.run) evidenced.add(a.run);
  for (const c of inc.causes) for (const e of c.evidence) if (e.run) evidenced.add(e.run);
  const pick = ranks.filter((r) => evidenced.has(r.id));
  return (pick.length ? pick : ranks).sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0)).map((r) => (r.rank !== null ? String(r.rank) : r.name));
}
