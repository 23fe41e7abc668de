// Alerts: what fires now, whether the notifications got out, the rules
// behind them, and silences. State in the query: `state` filters the
// alerts, `alert` highlights one (the toasts link there).

import * as api from "../api";
import { ALERT_EVENT } from "../notify";
import type { Route } from "../router";
import { paths, setQuery } from "../router";
import { append, fmtDuration, fmtNum, h, timeEl } from "../util";
import { fmtFull } from "../time";

const STATES = ["all", "firing", "pending", "resolved"] as const;
type StateFilter = (typeof STATES)[number];

/** Delivery state changes without live events (retries, give-ups): poll it. */
const POLL_MS = 5_000;

function err(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `alertname=loss-high run=r-1` (spaces or commas between) → matchers. */
export function parseMatchers(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const i = part.indexOf("=");
    if (i <= 0 || i === part.length - 1) return `"${part}" is not label=value`;
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  if (!Object.keys(out).length) return "give at least one label=value matcher";
  return out;
}

function labelChips(labels: Record<string, string>): HTMLElement {
  // alertname and severity have their own columns.
  const shown = Object.entries(labels).filter(([k]) => k !== "alertname" && k !== "severity");
  return h(
    "span.labels",
    null,
    ...shown.map(([k, v]) =>
      h("span.tag", { title: `${k}=${v}` }, `${k}=`, k === "run" ? h("a", { href: paths.run(v) }, v) : k === "project" ? h("a", { href: paths.runs(v) }, v) : v),
    ),
  );
}

function ruleCondition(r: api.RuleSpec): string {
  const scope = [r.project && `project ${r.project}`, r.run && `run ${r.run}`, r.group && `group ${r.group}`].filter(Boolean).join(", ");
  const labels = r.labels && Object.keys(r.labels).length ? ` {${Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(", ")}}` : "";
  let what: string;
  switch (r.kind) {
    case "threshold":
      what = `${r.expr ?? ""}${labels}`;
      break;
    case "run_state":
      what = `run ${(r.states ?? []).join(" | ")}`;
      break;
    case "incident":
      what = `incident ≥ ${r.min_severity ?? "any"}${r.causes?.length ? ` caused by ${r.causes.join(", ")}` : ""}`;
      break;
    case "burn_rate":
      what = `${r.errors ?? "?"} / ${r.total ?? "?"}${labels} vs ${r.objective ?? "?"}`;
      break;
    case "absence":
      what = "no points from a running run";
      break;
    default:
      what = r.expr ?? "";
  }
  return scope ? `${what} (${scope})` : what;
}

export function alertsPage(root: HTMLElement, route: Route): () => void {
  let alive = true;
  let filter: StateFilter = (STATES as readonly string[]).includes(route.query.get("state") ?? "") ? (route.query.get("state") as StateFilter) : "all";
  const focus = route.query.get("alert") ?? "";
  let scrolled = false;
  let view: api.AlertsView | null = null;

  const filterBar = h("div.seg", { role: "group", "aria-label": "filter by state" });
  const alertsBox = h("div.alerts-list", null, h("div.muted", null, "Loading alerts…"));
  const deliveryBox = h("div.delivery");
  const rulesBox = h("div.rules");
  const silencesBox = h("div.silences");

  const matchersIn = h("input.sil-matchers", { type: "text", placeholder: "alertname=loss-high run=r-1", "aria-label": "matchers", size: 34 });
  const durationIn = h("input.sil-duration", { type: "text", value: "2h", "aria-label": "duration", size: 6 });
  const commentIn = h("input.sil-comment", { type: "text", placeholder: "why", "aria-label": "comment", size: 28 });
  const formErr = h("span.error.sil-error");
  const form = h(
    "form.sil-form",
    {
      onsubmit: (e: Event) => {
        e.preventDefault();
        void createSilence();
      },
    },
    h("label", null, "Matchers ", matchersIn),
    h("label", null, "for ", durationIn),
    h("label", null, "Comment ", commentIn),
    h("button.primary", { type: "submit" }, "Silence"),
    formErr,
  );

  root.append(
    h("div.page-head", null, h("h1", null, "Alerts"), filterBar),
    alertsBox,
    h("h2", null, "Delivery"),
    deliveryBox,
    h("h2", null, "Silences"),
    form,
    silencesBox,
    h("h2", null, "Rules"),
    rulesBox,
  );

  async function createSilence() {
    const m = parseMatchers(matchersIn.value);
    if (typeof m === "string") {
      formErr.textContent = m;
      return;
    }
    formErr.textContent = "";
    try {
      await api.createSilence({ matchers: m, duration: durationIn.value.trim() || "2h", comment: commentIn.value.trim() });
      matchersIn.value = "";
      commentIn.value = "";
      await loadSilences();
      await loadAlerts();
    } catch (e) {
      formErr.textContent = `Could not create the silence: ${err(e)}`;
    }
  }

  function paintFilter() {
    const counts: Record<string, number> = { all: view?.alerts.length ?? 0, firing: 0, pending: 0, resolved: 0 };
    for (const a of view?.alerts ?? []) counts[a.state]++;
    filterBar.replaceChildren(
      ...STATES.map((s) =>
        h(
          "button.tiny",
          {
            "aria-pressed": String(s === filter),
            "data-state": s,
            onclick: () => {
              filter = s;
              setQuery({ state: s === "all" ? null : s });
              paintFilter();
              paintAlerts();
            },
          },
          `${s} ${counts[s]}`,
        ),
      ),
    );
  }

  function paintAlerts() {
    if (!view) return;
    const order: Record<api.AlertState, number> = { firing: 0, pending: 1, resolved: 2 };
    const sevOrder: Record<string, number> = { critical: 0, warning: 1, info: 2 };
    const rows = view.alerts
      .filter((a) => filter === "all" || a.state === filter)
      .sort((a, b) => order[a.state] - order[b.state] || (sevOrder[a.severity] ?? 3) - (sevOrder[b.severity] ?? 3) || b.active_since - a.active_since);
    if (!rows.length) {
      alertsBox.replaceChildren(h("div.empty", null, view.alerts.length ? `No ${filter} alerts.` : "No alerts: nothing fires, nothing pending, nothing resolved in the last hour."));
      return;
    }
    alertsBox.replaceChildren(
      h(
        "table.grid.alerts",
        null,
        h("thead", null, h("tr", null, ...["state", "severity", "rule", "labels", "since", "summary", ""].map((c) => h("th", null, c)))),
        h(
          "tbody",
          null,
          ...rows.map((a) => {
            const since = a.state === "resolved" ? a.resolved_at : a.state === "firing" ? (a.fired_at ?? a.active_since) : a.active_since;
            const muted = a.silenced_by ? `silenced by ${a.silenced_by}` : a.inhibited_by ? `inhibited by ${a.inhibited_by}` : "";
            return h(
              "tr",
              { "data-alert": a.id, "data-state": a.state, class: a.id === focus ? "focus" : "" },
              h("td", null, h("span.badge", { class: `as-${a.state}` }, a.state === "firing" ? h("span.live-dot") : null, a.state)),
              h("td", null, h("span.sev", { class: `sv-${a.severity}` }, a.severity)),
              h("td", null, h("b", null, a.rule)),
              h("td", null, labelChips(a.labels)),
              h("td", null, since ? timeEl(since, "ago") : ""),
              h("td.summary", null, a.summary, a.value !== null && !a.summary.includes(fmtNum(a.value)) ? h("span.muted", null, ` (${fmtNum(a.value)})`) : null, muted ? h("div.muted.mute-note", null, muted) : null),
              h(
                "td",
                null,
                a.state !== "resolved" && !a.silenced_by
                  ? h(
                      "button.tiny",
                      {
                        title: "Fill the silence form with this alert's rule and run",
                        onclick: () => {
                          const m: string[] = [`alertname=${a.rule}`];
                          if (a.labels.run) m.push(`run=${a.labels.run}`);
                          matchersIn.value = m.join(" ");
                          matchersIn.focus();
                          form.scrollIntoView({ block: "center" });
                        },
                      },
                      "silence…",
                    )
                  : null,
              ),
            );
          }),
        ),
      ),
    );
    if (focus && !scrolled) {
      const row = alertsBox.querySelector(`tr[data-alert="${CSS.escape(focus)}"]`);
      if (row) {
        row.scrollIntoView({ block: "center" });
        scrolled = true;
      }
    }
  }

  function paintDelivery() {
    if (!view) return;
    const channels = Object.entries(view.channels);
    const failed = channels.reduce((n, [, c]) => n + c.failed, 0);
    const counts = channels.length
      ? h(
          "table.grid.channels",
          null,
          h("thead", null, h("tr", null, h("th", null, "channel"), h("th.right", null, "delivered"), h("th.right", null, "waiting"), h("th.right", null, "failed"))),
          h(
            "tbody",
            null,
            ...channels.map(([name, c]) =>
              h(
                "tr",
                { "data-channel": name, class: c.failed ? "has-failed" : "" },
                h("td", null, h("b", null, name)),
                h("td.right.num", null, c.delivered),
                h("td.right.num", { class: c.pending ? "warn" : "" }, c.pending),
                h("td.right.num", { class: c.failed ? "bad" : "" }, c.failed),
              ),
            ),
          ),
        )
      : h("p.muted", null, "Nothing sent yet. Notifications need channels: ", h("code", null, "loupe serve --rules FILE"), " (see docs/alerting.md).");
    const notes = view.notifications;
    const list = notes.length
      ? h(
          "table.grid.notes",
          null,
          h("thead", null, h("tr", null, ...["created", "channel", "outcome", "attempts", "notification", "last error"].map((c) => h("th", null, c)))),
          h(
            "tbody",
            null,
            ...notes.map((n) =>
              h(
                "tr",
                { "data-note": n.id, "data-outcome": n.state },
                h("td", null, timeEl(n.created, "ago")),
                h("td", null, n.channel),
                h("td", null, h("span.badge", { class: `ds-${n.state}` }, n.state === "pending" ? (n.attempts ? "retrying" : "queued") : n.state)),
                h("td.right.num", null, n.attempts),
                h("td", null, n.title),
                h("td.note-err", null, n.last_error ?? ""),
              ),
            ),
          ),
        )
      : null;
    deliveryBox.replaceChildren();
    append(deliveryBox, [
      failed ? h("div.deliv-warn", null, `${failed} notification${failed === 1 ? "" : "s"} could not be delivered.`) : null,
      counts,
      list ? h("h3", null, "Recent notifications") : null,
      list,
    ]);
  }

  async function loadAlerts() {
    try {
      const v = await api.alerts();
      if (!alive) return;
      view = v;
      paintFilter();
      paintAlerts();
      paintDelivery();
    } catch (e) {
      if (!alive) return;
      const gone = e instanceof api.ApiError && e.status === 404;
      alertsBox.replaceChildren(h("div.error", null, gone ? "This server has no alerting." : `Could not load alerts: ${err(e)}`));
    }
  }

  async function loadSilences() {
    try {
      const list = await api.silences();
      if (!alive) return;
      const now = Date.now() / 1000;
      const active = list.filter((s) => s.ends > now).sort((a, b) => a.ends - b.ends);
      if (!active.length) {
        silencesBox.replaceChildren(h("p.muted", null, "No silences."));
        return;
      }
      silencesBox.replaceChildren(
        h(
          "table.grid.sil-list",
          null,
          h("thead", null, h("tr", null, ...["matchers", "state", "ends", "comment", ""].map((c) => h("th", null, c)))),
          h(
            "tbody",
            null,
            ...active.map((s) =>
              h(
                "tr",
                { "data-silence": s.id },
                h("td", null, ...Object.entries(s.matchers).map(([k, v]) => h("span.tag", null, `${k}=${v}`))),
                h("td", null, s.starts > now ? timeEl(s.starts, "absolute", "starts ") : "active"),
                h("td", { title: fmtFull(s.ends) }, `in ${fmtDuration(s.ends - now)}`),
                h("td", null, s.comment, s.created_by ? h("span.muted", null, ` — ${s.created_by}`) : null),
                h(
                  "td",
                  null,
                  h(
                    "button.tiny",
                    {
                      onclick: async (e: Event) => {
                        const b = e.currentTarget as HTMLButtonElement;
                        b.disabled = true;
                        try {
                          await api.expireSilence(s.id);
                        } catch (x) {
                          formErr.textContent = `Could not expire ${s.id}: ${err(x)}`;
                        }
                        await loadSilences();
                        await loadAlerts();
                      },
                    },
                    "expire",
                  ),
                ),
              ),
            ),
          ),
        ),
      );
    } catch (e) {
      if (alive) silencesBox.replaceChildren(h("div.error", null, `Could not load silences: ${err(e)}`));
    }
  }

  async function loadRules() {
    try {
      const rules = await api.alertRules();
      if (!alive) return;
      rulesBox.replaceChildren(
        h(
          "table.grid.rule-list",
          null,
          h("thead", null, h("tr", null, ...["rule", "source", "kind", "condition", "for", "severity", "channels"].map((c) => h("th", null, c)))),
          h(
            "tbody",
            null,
            ...rules.map(({ source, rule }) =>
              h(
                "tr",
                { "data-rule": rule.name },
                h("td", null, h("b", null, rule.name)),
                h("td", null, h("span.badge", { class: `src-${source}` }, source)),
                h("td", null, rule.kind),
                h("td", null, h("code", null, ruleCondition(rule))),
                h("td", null, rule.for ?? ""),
                h("td", null, rule.severity ? h("span.sev", { class: `sv-${rule.severity}` }, rule.severity) : ""),
                h("td", null, rule.channels?.join(", ") ?? h("span.muted", null, "all")),
              ),
            ),
          ),
        ),
      );
    } catch (e) {
      if (alive) rulesBox.replaceChildren(h("div.error", null, `Could not load rules: ${err(e)}`));
    }
  }

  void loadAlerts();
  void loadSilences();
  void loadRules();
  const onAlert = () => void loadAlerts();
  window.addEventListener(ALERT_EVENT, onAlert);
  const timer = setInterval(() => void loadAlerts(), POLL_MS);
  return () => {
    alive = false;
    clearInterval(timer);
    window.removeEventListener(ALERT_EVENT, onAlert);
  };
}
