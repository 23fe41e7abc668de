// The top bar (logo, breadcrumbs, alerts link, theme switch) and the keyboard help.

import { HELP, setCurrentProject } from "./keys";
import type { Route } from "./router";
import { alertBadge } from "./notify";
import { h } from "./util";

type Theme = "auto" | "dark" | "light";

/** Charts read colours from CSS at draw time: they listen for this. */
export const THEME_EVENT = "loupe-theme";

/** A page that learns its project after loading (a run, a comparison) says so here. */
export const PROJECT_EVENT = "loupe-project";

export function announceProject(project: string): void {
  sessionStorage.setItem("loupe.project", project);
  window.dispatchEvent(new Event(PROJECT_EVENT));
}

/** One breadcrumb after "projects": a link, or the current page's plain label. */
export interface Crumb {
  label: string;
  href?: string;
}

/** What the current page said its place is, once it knew (null: derive it from the route). */
let pageCrumbs: Crumb[] | null = null;

/** A page that learns where it sits (a run's project and job) says so here. */
export function announceCrumbs(crumbs: Crumb[]): void {
  pageCrumbs = crumbs;
  window.dispatchEvent(new Event(PROJECT_EVENT));
}

/** The crumbs a route implies before its page has loaded anything. */
function routeCrumbs(r: Route): Crumb[] {
  switch (r.name) {
    case "projects":
      return [];
    case "runs": {
      const job = r.query.get("job");
      return job ? [{ label: r.arg, href: `/p/${encodeURIComponent(r.arg)}` }, { label: `job ${job}` }] : [{ label: r.arg }];
    }
    case "run":
      // The project is not known until the run loads: never guess it from the last page.
      return [{ label: r.arg }];
    case "compare":
      return [{ label: "compare" }];
    case "alerts":
      return [{ label: "alerts" }];
    default:
      return [{ label: "not found" }];
  }
}

export function compactHeader(): { el: HTMLElement; setRoute(r: Route): void; cycleTheme(): void } {
  const crumbsEl = h("nav.crumbs", { "aria-label": "breadcrumbs" });
  const themeBtn = h("button.ghost", { title: "Theme (t)", "aria-label": "theme" });
  const current = (): Theme => {
    const t = localStorage.getItem("loupe.theme");
    return t === "dark" || t === "light" ? t : "auto";
  };
  const apply = (t: Theme) => {
    if (t === "auto") {
      localStorage.removeItem("loupe.theme");
      delete document.documentElement.dataset.theme;
    } else {
      localStorage.setItem("loupe.theme", t);
      document.documentElement.dataset.theme = t;
    }
    themeBtn.textContent = t === "auto" ? "◐ auto" : t === "dark" ? "● dark" : "○ light";
    window.dispatchEvent(new Event(THEME_EVENT));
  };
  themeBtn.textContent = current() === "auto" ? "◐ auto" : current() === "dark" ? "● dark" : "○ light";
  const cycle = () => apply(current() === "auto" ? "dark" : current() === "dark" ? "light" : "auto");
  themeBtn.addEventListener("click", cycle);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => window.dispatchEvent(new Event(THEME_EVENT)));
  const help = h("button.ghost", { title: "Keyboard shortcuts (?)", "aria-label": "help", onclick: () => renderHelp() }, "?");
  const el = h("header.top", null, h("a.logo", { href: "/", title: "Projects" }, h("span.logo-mark", null, "◎"), "Loupe"), crumbsEl, alertBadge(), h("div.spacer"), themeBtn, help);
  let last: Route | null = null;
  window.addEventListener(PROJECT_EVENT, () => last && api.setRoute(last));
  const api = {
    el,
    cycleTheme: cycle,
    setRoute(r: Route) {
      if (r !== last) pageCrumbs = null;
      last = r;
      if (r.name === "runs") {
        sessionStorage.setItem("loupe.project", r.arg);
        setCurrentProject(r.arg);
      }
      const crumbs = pageCrumbs ?? routeCrumbs(r);
      const parts: (HTMLElement | string)[] = [r.name === "projects" ? h("span.crumb-here", { "aria-current": "page" }, "projects") : h("a", { href: "/" }, "projects")];
      crumbs.forEach((c, i) => {
        const here = i === crumbs.length - 1;
        parts.push(" / ", c.href && !here ? h("a", { href: c.href }, c.label) : h("span.crumb-here", { "aria-current": here ? "page" : null }, c.label));
      });
      crumbs.filter((c) => c.href?.startsWith("/p/")).slice(0, 1).forEach((c) => setCurrentProject(c.label));
      crumbsEl.replaceChildren(...parts);
    },
  };
  return api;
}

let helpEl: HTMLElement | null = null;

export function renderHelp(): void {
  if (helpEl) {
    helpEl.remove();
    helpEl = null;
    return;
  }
  const close = () => {
    helpEl?.remove();
    helpEl = null;
  };
  helpEl = h(
    "div.modal",
    { role: "dialog", "aria-label": "keyboard shortcuts", onclick: (e: Event) => e.target === helpEl && close() },
    h("div.modal-box", null, h("h3", null, "Keyboard"), h("table.kv", null, ...HELP.map(([k, d]) => h("tr", null, h("td", null, h("kbd", null, k)), h("td", null, d)))), h("button", { onclick: close }, "Close")),
  );
  document.body.append(helpEl);
  const esc = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      close();
      document.removeEventListener("keydown", esc);
    }
  };
  document.addEventListener("keydown", esc);
}
