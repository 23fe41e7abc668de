// The diagnosis tab (incidents with ranked causes, evidence and fixes; the
// health breakdown) and the config tab's JSON tree.

import * as api from "../api";
import type { Cause, Health, Incident, Run, SeriesEvidence } from "../api";
import { fmtSeriesValue, humanizeText, unitOf, type Unit } from "../format";
import { paths } from "../router";
import { fmtNum, fmtTime, h, timeEl } from "../util";
import { fmtFull } from "../time";
import { causeButtons, fixButton, projectWeights, rankingNote, showMarks } from "./feedback";
import { isJobIncident, ranksInvolved } from "./job";

/** What the diagnosis tab knows besides the incidents: whose page it is, and the job's ranks. */
export interface DiagnosisContext {
  run: Run;
  ranks: Run[];
  /** An incident to bring into view (`inc` in the URL, from a chart's span label). */
  focus?: string | null;
}

/** Steps shown either side of an evidence step when its link opens the chart. */
const EVIDENCE_PAD_STEPS = 25;
/** Seconds shown either side of a step-less evidence point. */
const EVIDENCE_PAD_SECONDS = 120;
/** The sparkline's width in pixels: the M4 width asked for. */
const SPARK_WIDTH = 120;

/** The chart of an evidence series, zoomed on its step (or its time), with the step marked. */
export function evidenceHref(e: SeriesEvidence, inc: Incident): string {
  // Evidence of a job's incident names its rank's run; a run's may leave it to the incident.
  const run = e.run ?? inc.run ?? "";
  const series = e.series ?? "";
  if (e.step !== null) {
    const span = inc.start_step !== null && inc.end_step !== null ? inc.end_step - inc.start_step : 0;
    const pad = Math.max(EVIDENCE_PAD_STEPS, Math.ceil(span / 2));
    return paths.run(run, { s: series, z: `${series}:${Math.max(0, e.step - pad)}:${e.step + pad}`, mark: String(e.step) });
  }
  if (e.time !== null) {
    return paths.run(run, { s: series, x: "time", z: `${series}:${e.time - EVIDENCE_PAD_SECONDS}:${e.time + EVIDENCE_PAD_SECONDS}` });
  }
  return paths.run(run, { s: series });
}

/**
 * A small line of the cause's first series evidence around its step, the
 * evidence point dotted, linking to the zoomed chart. Drawn when it scrolls
 * into view; nothing when the series has no points there.
 */
function sparkline(c: Cause, inc: Incident): HTMLElement | null {
  const e = c.evidence.find(
    (x): x is SeriesEvidence & { run: string; series: string } => x.kind === "series" && !!x.run && !!x.series && (x.step !== null || x.time !== null),
  );
  if (!e) return null;
  const holder = h("a.spark", { href: evidenceHref(e, inc), title: `${e.series} around ${e.step !== null ? `step ${e.step}` : fmtTime(e.time)}`, "data-series": e.series });
  const draw = async () => {
    const pad = e.step !== null ? Math.max(EVIDENCE_PAD_STEPS * 4, 100) : EVIDENCE_PAD_SECONDS * 4;
    const at = e.step ?? e.time ?? 0;
    const q: api.DataQuery = { x: e.step !== null ? "step" : "time", from: at - pad, to: at + pad, width: SPARK_WIDTH };
    const d = await api.seriesData(e.run, e.series, q).catch(() => null);
    if (!d || d.x.length < 2) return;
    const pts = d.x.map((x, i) => [x, d.y[i]] as const).filter(([, y]) => Number.isFinite(y));
    if (pts.length < 2) return;
    const [x0, x1] = [pts[0][0], pts[pts.length - 1][0]];
    let [y0, y1] = [Infinity, -Infinity];
    for (const [, y] of pts) [y0, y1] = [Math.min(y0, y), Math.max(y1, y)];
    if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
    const W = SPARK_WIDTH;
    const H = 28;
    const sx = (x: number) => (x1 === x0 ? W / 2 : ((x - x0) / (x1 - x0)) * (W - 4) + 2);
    const sy = (y: number) => H - 2 - ((y - y0) / (y1 - y0)) * (H - 4);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", String(W));
    svg.setAttribute("height", String(H));
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "));
    line.setAttribute("class", "spark-line");
    svg.append(line);
    const v = typeof e.value === "number" ? e.value : api.num(e.value);
    if (at >= x0 && at <= x1 && Number.isFinite(v)) {
      const dot = document.createElementNS(ns, "circle");
      dot.setAttribute("cx", sx(at).toFixed(1));
      dot.setAttribute("cy", sy(Math.min(y1, Math.max(y0, v))).toFixed(1));
      dot.setAttribute("r", "2.5");
      dot.setAttribute("class", "spark-dot");
      svg.append(dot);
    }
    holder.append(svg);
    holder.dataset.drawn = "1";
  };
  const io = new IntersectionObserver((entries) => {
    if (entries.some((x) => x.isIntersecting)) {
      io.disconnect();
      void draw();
    }
  });
  io.observe(holder);
  return holder;
}

/** The unit of a cause's text: its series evidence's, when they all share one. */
function causeUnit(c: Cause): Unit {
  const units = new Set(c.evidence.filter((e): e is SeriesEvidence => e.kind === "series").map((e) => unitOf(e.series ?? "")));
  return units.size === 1 ? [...units][0] : "none";
}

function seriesEvidenceItem(e: SeriesEvidence, inc: Incident, rankOf: (run: string) => string | null): HTMLElement {
  const rank = e.run ? rankOf(e.run) : null;
  return h(
    "li",
    null,
    h("a.evidence-link", { href: evidenceHref(e, inc), title: "open the chart zoomed on this point" }, e.series),
    rank ? h("span.muted", null, ` (${rank})`) : null,
    e.step !== null ? ` at step ${e.step}` : e.time !== null ? ` at ${fmtTime(e.time)}` : "",
    e.value !== null ? ` = ${typeof e.value === "number" ? fmtSeriesValue(e.value, e.series ?? "") : e.value}` : "",
    e.detail ? h("span.muted", null, ` — ${humanizeText(e.detail, unitOf(e.series ?? ""))}`) : null,
  );
}

export function jsonTree(v: unknown, name?: string, depth = 0): HTMLElement {
  const label = name !== undefined ? h("span.jt-key", null, name, ": ") : null;
  if (v !== null && typeof v === "object") {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as Record<string, unknown>);
    const open = depth < 2 || entries.length <= 8;
    const d = h(
      "details.jt",
      { open },
      h("summary", null, label, h("span.muted", null, Array.isArray(v) ? `[${entries.length}]` : `{${entries.length}}`)),
      ...entries.map(([k, x]) => jsonTree(x, k, depth + 1)),
    );
    return d;
  }
  const cls = v === null ? "jt-null" : typeof v === "number" ? "jt-num" : typeof v === "boolean" ? "jt-bool" : "jt-str";
  return h("div.jt-leaf", null, label, h("span", { class: cls }, typeof v === "string" ? JSON.stringify(v) : String(v)));
}

export function incidentCard(inc: Incident, ctx?: DiagnosisContext): HTMLElement {
  // The server ranks causes (with the project's feedback weights); the
  // sort only orders incidents from servers that did not.
  const ranked = (c: Cause) => inc.feedback?.causes.find((w) => w.kind === c.kind)?.ranked_score ?? c.score;
  const causes = [...inc.causes].sort((a, b) => ranked(b) - ranked(a));
  const byId = new Map((ctx?.ranks ?? []).map((r) => [r.id, r] as const));
  const rankOf = (run: string): string | null => {
    const r = byId.get(run);
    return r && r.group && r.rank !== null && ctx && r.id !== ctx.run.id ? `rank ${r.rank}` : null;
  };
  const job = isJobIncident(inc);
  const involved = job ? ranksInvolved(inc, byId) : [];
  const card = h(
    "article.incident",
    { class: `sev-${inc.severity} state-${inc.state}`, "data-incident": inc.id },
    h(
      "header",
      null,
      h("span.sev", null, inc.severity),
      h("h3", null, inc.title),
      h("span.muted", null, inc.state === "open" ? "open" : resolvedAt(inc)),
    ),
    job
      ? h("div.inc-job", null, h("span.tag", null, `job ${inc.group}`), involved.length ? ` ranks involved: ${involved.join(", ")}` : "", " — shown once for the whole job, on every rank's page")
      : null,
    h(
      "div.muted.inc-when",
      null,
      `${inc.kind} · from `,
      timeEl(inc.start_time),
      inc.end_time ? [" to ", timeEl(inc.end_time)] : "",
      inc.start_step !== null ? ` · steps ${inc.start_step}${inc.end_step !== null ? `–${inc.end_step}` : "+"}` : "",
    ),
    rankingNote(inc),
    causes.length
      ? h(
          "ol.causes",
          null,
          ...causes.map((c) =>
            h(
              "li.cause",
              null,
              h("div.cause-head", null, h("span.score", { style: `--w:${Math.round(c.score * 100)}%`, title: `score ${c.score.toFixed(2)}` }, `${Math.round(c.score * 100)}%`), h("b", null, c.title), h("span.muted", null, ` ${c.kind}`), sparkline(c, inc), causeButtons(inc, c)),
              h("p", null, humanizeText(c.explanation, causeUnit(c))),
              c.fixes.length ? h("div.fixes", null, h("h4", null, "What to try"), h("ul", null, ...c.fixes.map((f) => h("li", null, f, " ", fixButton(inc, c, f))))) : null,
              c.evidence.length
                ? h(
                    "div.evidence",
                    null,
                    h("h4", null, "Evidence"),
                    h(
                      "ul",
                      null,
                      ...c.evidence.map((e) =>
                        e.kind === "series"
                          ? seriesEvidenceItem(e, inc, rankOf)
                          : h("li", null, h("a", { href: paths.run(e.run ?? inc.run ?? "", { tab: "logs", t: String(e.time), seq: String(e.seq) }) }, timeEl(e.time, "absolute")), " ", h("code.log-ev", null, e.text)),
                      ),
                    ),
                  )
                : null,
            ),
          ),
        )
      : h("p.muted", null, "No cause identified yet."),
    h("div.fb-status.muted", { role: "status" }),
    inc.anomalies.length
      ? h(
          "details.anoms",
          null,
          h("summary", null, `${inc.anomalies.length} anomal${inc.anomalies.length === 1 ? "y" : "ies"}`),
          h("ul", null, ...inc.anomalies.map((a) => h("li", null, h("b", null, a.series), a.run && rankOf(a.run) ? h("span.muted", null, ` (${rankOf(a.run)})`) : null, ` ${a.detector} · score ${fmtNum(a.score)}`, a.start_step !== null ? ` · steps ${a.start_step}–${a.end_step ?? "…"}` : "", a.detail ? ` — ${humanizeText(a.detail, unitOf(a.series ?? ""))}` : ""))),
        )
      : null,
  );
  void showMarks(card, inc);
  return card;
}

export function healthView(health: Health | null): HTMLElement {
  if (!health) return h("div.health-box.muted", null, "No health score: this server does not compute one yet.");
  if (health.score === null) return h("div.health-box.muted", null, "No health score yet: diagnosis has not judged this run.");
  const score = Math.round(health.score);
  return h(
    "div.health-box",
    null,
    h("div.health-score", { class: `h${Math.min(3, Math.floor(score / 25))}` }, h("b", null, String(score)), h("span", null, "/100 health")),
    health.breakdown.length
      ? h("table.kv", null, h("tr", null, h("th", null, "Indicator"), h("th", null, "Penalty"), h("th", null, "Why")), ...health.breakdown.map((b) => h("tr", null, h("td", null, b.indicator), h("td.right", null, `−${fmtNum(b.penalty)}`), h("td", null, b.detail))))
      : h("p.muted", null, "Nothing takes points off."),
  );
}

export function diagnosisView(incidents: Incident[] | null, health: Health | null, ctx?: DiagnosisContext): HTMLElement {
  const body: HTMLElement[] = [healthView(health)];
  if (incidents === null) {
    body.push(h("div.empty", null, h("h3", null, "Diagnosis is not available"), h("p.muted", null, "This server does not run the diagnosis yet (its incidents endpoint answers 404). Charts, logs and the rest work as usual.")));
  } else if (!incidents.length) {
    body.push(h("div.empty", null, h("h3", null, "No incidents"), h("p.muted", null, "Nothing unusual was detected in this run.")));
  } else {
    const sorted = [...incidents].sort((a, b) => (a.state === b.state ? b.opened - a.opened : a.state === "open" ? -1 : 1));
    // A rank's own incidents first, then its job's (each shown once, with the ranks involved).
    const own = sorted.filter((i) => !isJobIncident(i));
    const jobs = sorted.filter(isJobIncident);
    if (own.length) body.push(...own.map((i) => incidentCard(i, ctx)));
    if (jobs.length) body.push(h("h3.inc-section", null, `Incidents of job ${jobs[0].group} (${jobs.length})`), ...jobs.map((i) => incidentCard(i, ctx)));
    if (sorted[0].project) body.push(projectWeights(sorted[0].project));
  }
  const el = h("div.diagnosis", null, ...body);
  const focus = ctx?.focus;
  if (focus) {
    requestAnimationFrame(() => {
      const card = [...el.querySelectorAll<HTMLElement>(".incident")].find((c) => c.dataset.incident === focus);
      if (!card) return;
      card.classList.add("focused");
      card.scrollIntoView({ block: "start" });
    });
  }
  return el;
}

/** "resolved HH:MM:SS" at the data time its evidence ended — the clock of the
 *  run's header, charts and logs. The diagnoser's own clock (when it closed
 *  the incident) differs only where data is replayed or simulated, as in the
 *  demo, and is kept in the hover. */
function resolvedAt(inc: Incident): HTMLElement {
  const el = timeEl(inc.end_time ?? inc.resolved, "absolute", "resolved ");
  if (inc.end_time !== null && inc.resolved !== null && Math.abs(inc.resolved - inc.end_time) > 60) {
    el.title += ` (diagnosis closed it at ${fmtFull(inc.resolved)})`;
  }
  return el;
}
