// The diagnosis tab (incidents with ranked causes, evidence and fixes; the
// health breakdown) and the config tab's JSON tree.

import type { Cause, Health, Incident } from "../api";
import { paths } from "../router";
import { fmtNum, fmtTime, h } from "../util";
import { causeButtons, fixButton, projectWeights, rankingNote, showMarks } from "./feedback";

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

export function incidentCard(inc: Incident): HTMLElement {
  // The server ranks causes (with the project's feedback weights); the
  // sort only orders incidents from servers that did not.
  const ranked = (c: Cause) => inc.feedback?.causes.find((w) => w.kind === c.kind)?.ranked_score ?? c.score;
  const causes = [...inc.causes].sort((a, b) => ranked(b) - ranked(a));
  const card = h(
    "article.incident",
    { class: `sev-${inc.severity} state-${inc.state}`, "data-incident": inc.id },
    h(
      "header",
      null,
      h("span.sev", null, inc.severity),
      h("h3", null, inc.title),
      h("span.muted", null, inc.state === "open" ? "open" : `resolved ${fmtTime(inc.resolved)}`),
    ),
    h(
      "div.muted.inc-when",
      null,
      `${inc.kind} · from ${fmtTime(inc.start_time)}`,
      inc.end_time ? ` to ${fmtTime(inc.end_time)}` : "",
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
              h("div.cause-head", null, h("span.score", { style: `--w:${Math.round(c.score * 100)}%`, title: `score ${c.score.toFixed(2)}` }, `${Math.round(c.score * 100)}%`), h("b", null, c.title), h("span.muted", null, ` ${c.kind}`), causeButtons(inc, c)),
              h("p", null, c.explanation),
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
                          ? h(
                              "li",
                              null,
                              h("a", { href: paths.run(e.run, { tab: "charts", s: e.series }) }, e.series),
                              e.step !== null ? ` at step ${e.step}` : "",
                              e.value !== null ? ` = ${typeof e.value === "number" ? fmtNum(e.value) : e.value}` : "",
                              e.detail ? h("span.muted", null, ` — ${e.detail}`) : null,
                            )
                          : h("li", null, h("a", { href: paths.run(e.run, { tab: "logs", t: String(e.time), seq: String(e.seq) }) }, fmtTime(e.time)), " ", h("code.log-ev", null, e.text)),
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
          h("ul", null, ...inc.anomalies.map((a) => h("li", null, h("b", null, a.series), ` ${a.detector} · score ${fmtNum(a.score)}`, a.start_step !== null ? ` · steps ${a.start_step}–${a.end_step ?? "…"}` : "", a.detail ? ` — ${a.detail}` : ""))),
        )
      : null,
  );
  void showMarks(card, inc);
  return card;
}

export function healthView(health: Health | null): HTMLElement {
  if (!health) return h("div.health-box.muted", null, "No health score: this server does not compute one yet.");
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

export function diagnosisView(incidents: Incident[] | null, health: Health | null): HTMLElement {
  const body: HTMLElement[] = [healthView(health)];
  if (incidents === null) {
    body.push(h("div.empty", null, h("h3", null, "Diagnosis is not available"), h("p.muted", null, "This server does not run the diagnosis yet (its incidents endpoint answers 404). Charts, logs and the rest work as usual.")));
  } else if (!incidents.length) {
    body.push(h("div.empty", null, h("h3", null, "No incidents"), h("p.muted", null, "Nothing unusual was detected in this run.")));
  } else {
    const sorted = [...incidents].sort((a, b) => (a.state === b.state ? b.opened - a.opened : a.state === "open" ? -1 : 1));
    body.push(...sorted.map((i) => incidentCard(i)));
    if (sorted[0].project) body.push(projectWeights(sorted[0].project));
  }
  return h("div.diagnosis", null, ...body);
}
