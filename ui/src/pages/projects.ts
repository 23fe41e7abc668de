// Projects: run counts, runs running now and failed, incidents open and in
// all, and when each project last moved.

import * as api from "../api";
import type { Route } from "../router";
import { navigate, paths } from "../router";
import { pageKeys } from "../keys";
import { h, timeEl } from "../util";

export function projectsPage(root: HTMLElement, _route: Route): () => void {
  let alive = true;
  const list = h("div.cards", null, h("div.muted", null, "Loading projects…"));
  root.append(h("div.page-head", null, h("h1", null, "Projects")), list);
  let cursor = -1;
  let names: string[] = [];
  const mark = () => list.querySelectorAll(".card").forEach((c, i) => c.classList.toggle("cursor", i === cursor));
  pageKeys({
    j: () => {
      cursor = Math.min(names.length - 1, cursor + 1);
      mark();
    },
    k: () => {
      cursor = Math.max(0, cursor - 1);
      mark();
    },
    Enter: () => names[cursor] && navigate(paths.runs(names[cursor])),
  });
  void (async () => {
    try {
      // Older servers give no incident counts on projects: count the listed incidents then.
      const projects = await api.projects();
      const needCounts = projects.some((p) => p.incidents === undefined);
      const listed = needCounts ? await api.incidents({ limit: 1000 }).catch(() => null) : [];
      if (!alive) return;
      names = projects.map((p) => p.name);
      if (!projects.length) {
        list.replaceChildren(
          h("div.empty", null, h("h2", null, "No runs yet"), h("p", null, "Start a run with the Python SDK (", h("code", null, "import loupe; loupe.init(project=\"demo\")"), ") or ", h("code", null, "loupe demo"), ", and it appears here.")),
        );
        return;
      }
      list.replaceChildren(
        ...projects.map((p) => {
          const mine = listed?.filter((i) => i.project === p.name) ?? null;
          const open = p.open_incidents ?? (mine ? mine.filter((i) => i.state === "open").length : null);
          const total = p.incidents ?? (mine ? mine.length : null);
          return h(
            "a.card",
            { href: paths.runs(p.name), "data-project": p.name },
            h("div.card-title", null, p.name),
            h(
              "div.card-stats",
              null,
              h("span", null, h("b", null, p.runs), " runs"),
              h("span", { class: p.running ? "live" : "" }, p.running ? h("span.live-dot") : null, h("b", null, p.running), " running"),
              p.failed !== undefined ? h("span", { class: p.failed ? "bad" : "", "data-stat": "failed" }, h("b", null, p.failed), " failed") : null,
              h(
                "span",
                { class: open ? "warn" : "", "data-stat": "incidents", title: open === null ? "diagnosis is not available on this server" : `${open} open now, ${total} in all (resolved ones included)` },
                h("b", null, open === null ? "–" : open),
                " open / ",
                h("b", null, total === null ? "–" : total),
                " incidents",
              ),
            ),
            p.last_activity ? h("div.card-when.muted", { "data-stat": "activity" }, timeEl(p.last_activity, "ago", "last activity ")) : null,
          );
        }),
      );
    } catch (e) {
      list.replaceChildren(h("div.error", null, `Could not load projects: ${e instanceof Error ? e.message : e}`));
    }
  })();
  return () => {
    alive = false;
  };
}
