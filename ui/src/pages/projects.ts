// Projects: run counts, runs running now, open incidents.

import * as api from "../api";
import type { Route } from "../router";
import { navigate, paths } from "../router";
import { pageKeys } from "../keys";
import { h } from "../util";

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
      const [projects, open] = await Promise.all([api.projects(), api.incidents({ state: "open" }).catch(() => null)]);
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
          const inc = open === null ? null : open.filter((i) => i.project === p.name).length;
          return h(
            "a.card",
            { href: paths.runs(p.name), "data-project": p.name },
            h("div.card-title", null, p.name),
            h(
              "div.card-stats",
              null,
              h("span", null, h("b", null, p.runs), " runs"),
              h("span", { class: p.running ? "live" : "" }, p.running ? h("span.live-dot") : null, h("b", null, p.running), " running"),
              h("span", { class: inc ? "warn" : "", title: inc === null ? "diagnosis is not available on this server" : "" }, h("b", null, inc === null ? "–" : inc), " open incidents"),
            ),
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
