// Live alert notifications on every page: the header's firing-count badge
// and toasts for alerts that start firing or resolve, from the `alert`
// events of `/api/v1/live`. Pages that show alerts listen for ALERT_EVENT
// to refresh.

import * as api from "./api";
import { paths } from "./router";
import { h } from "./util";

/** Dispatched on `window` (detail: the alert) whenever an `alert` live event arrives. */
export const ALERT_EVENT = "loupe-alert";

/** More toasts than this push the oldest out, so a storm cannot cover the page. */
const MAX_TOASTS = 3;
/** A resolve is good news: it goes away by itself; a firing toast stays until dismissed. */
const RESOLVED_TOAST_MS = 10_000;

export function alertBadge(): HTMLElement {
  const count = h("span.alert-count", { hidden: true, "aria-label": "firing alerts" });
  const link = h("a.alerts-link", { href: paths.alerts(), title: "Alerts" }, "alerts", count);
  const firing = new Map<string, api.Alert>();
  const paint = () => {
    count.textContent = String(firing.size);
    count.hidden = firing.size === 0;
    const crit = [...firing.values()].some((a) => a.severity === "critical");
    count.classList.toggle("crit", crit);
    link.title = firing.size ? `Alerts: ${firing.size} firing` : "Alerts";
  };
  const track = (a: api.Alert) => {
    if (a.state === "firing") firing.set(a.id, a);
    else firing.delete(a.id);
  };
  const toasts = h("div.toasts", { role: "status", "aria-live": "polite" });
  document.body.append(toasts);

  // The count starts from the API and then follows the live events; a
  // server without alerting (404) just shows no badge.
  void api
    .alerts()
    .then((v) => {
      v.alerts.forEach(track);
      paint();
    })
    .catch(() => undefined);
  api.live(null, {
    open: () => {
      window.__loupe.liveOpen = (window.__loupe.liveOpen ?? 0) + 1;
    },
    alert: (_run, raw) => {
      const a = api.liveAlert(raw);
      const was = firing.has(a.id);
      track(a);
      paint();
      window.dispatchEvent(new CustomEvent(ALERT_EVENT, { detail: a }));
      // Pending is not news yet; a silenced alert was muted on purpose.
      if (a.silenced_by) return;
      if (a.state === "firing" && !was) toast(toasts, a);
      if (a.state === "resolved") toast(toasts, a);
    },
  });
  return link;
}

function toast(box: HTMLElement, a: api.Alert): void {
  const run = a.labels.run;
  const title = `${a.state === "firing" ? "Firing" : "Resolved"}: ${a.rule}`;
  const close = () => el.remove();
  const el = h(
    "div.toast",
    { class: `sev-${a.severity} ts-${a.state}`, "data-alert": a.id, role: "alert" },
    h("div.toast-head", null, h("span.sev", null, a.state === "resolved" ? "resolved" : a.severity), h("b.toast-title", null, title), h("button.ghost.tiny.toast-x", { "aria-label": "dismiss", title: "Dismiss", onclick: close }, "✕")),
    h("div.toast-body", null, a.summary),
    h(
      "div.toast-links",
      null,
      h("a", { href: paths.alerts({ alert: a.id }), onclick: close }, "alert"),
      run ? h("a", { href: paths.run(run), onclick: close }, `run ${run}`) : null,
    ),
  );
  // One toast per alert: a newer state replaces the older toast.
  box.querySelector(`[data-alert="${CSS.escape(a.id)}"]`)?.remove();
  box.prepend(el);
  while (box.children.length > MAX_TOASTS) box.lastElementChild?.remove();
  if (a.state === "resolved") setTimeout(close, RESOLVED_TOAST_MS);
}
