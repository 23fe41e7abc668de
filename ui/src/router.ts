// Routing: the page is the path, the page's state is the query string, so
// every view is a shareable URL. Pages update the query with `setQuery`
// (no re-render); links and `navigate` render a new page.

export interface Route {
  name: "projects" | "runs" | "run" | "compare" | "alerts" | "notfound";
  /** The path's parameter: a project or a run id. */
  arg: string;
  query: URLSearchParams;
}

export type Cleanup = () => void;
export type Page = (root: HTMLElement, route: Route) => Cleanup | void;

export function parse(loc: Location | URL): Route {
  const parts = loc.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(loc.search);
  if (parts.length === 0) return { name: "projects", arg: "", query };
  if (parts[0] === "p" && parts.length === 2) return { name: "runs", arg: parts[1], query };
  if (parts[0] === "r" && parts.length === 2) return { name: "run", arg: parts[1], query };
  if (parts[0] === "compare" && parts.length === 1) return { name: "compare", arg: "", query };
  if (parts[0] === "alerts" && parts.length === 1) return { name: "alerts", arg: "", query };
  return { name: "notfound", arg: loc.pathname, query };
}

export const paths = {
  projects: () => "/",
  runs: (project: string, q?: Record<string, string>) => withQuery(`/p/${encodeURIComponent(project)}`, q),
  run: (id: string, q?: Record<string, string>) => withQuery(`/r/${encodeURIComponent(id)}`, q),
  alerts: (q?: Record<string, string>) => withQuery("/alerts", q),
  compare: (ids: string[], q?: Record<string, string>) => withQuery("/compare", { runs: ids.join(","), ...q }),
};

function withQuery(path: string, q?: Record<string, string>): string {
  const s = new URLSearchParams(q ?? {}).toString();
  return s ? `${path}?${s}` : path;
}

let onChange: (() => void) | null = null;

export function start(render: () => void): void {
  onChange = render;
  window.addEventListener("popstate", render);
  document.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = (ev.target as Element | null)?.closest?.("a");
    if (!a || a.target || a.hasAttribute("download")) return;
    const href = a.getAttribute("href");
    if (!href || !href.startsWith("/") || href.startsWith("/api/")) return;
    ev.preventDefault();
    navigate(href);
  });
  render();
}

export function navigate(href: string, replace = false): void {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  window.scrollTo(0, 0);
  onChange?.();
}

/** Writes page state into the URL without rendering again. */
export function setQuery(patch: Record<string, string | number | boolean | null | undefined>, push = false): void {
  const u = new URL(location.href);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || v === undefined || v === "" || v === false) u.searchParams.delete(k);
    else u.searchParams.set(k, String(v));
  }
  const href = u.pathname + (u.searchParams.toString() ? `?${u.searchParams}` : "");
  if (href === location.pathname + location.search) return;
  if (push) history.pushState(null, "", href);
  else history.replaceState(null, "", href);
}
