// Error and empty states: what a page shows when what its URL names does not
// exist, always with a way back.

import { paths } from "../router";
import { h } from "../util";

/** "No run `x`": the thing, the id as given, and where to go instead. */
export function notFound(kind: "run" | "project" | "page" | "runs to compare", id: string, back?: { href: string; label: string }): HTMLElement {
  const where = back ?? { href: paths.projects(), label: "Back to projects" };
  return h(
    "div.empty.not-found",
    { role: "alert", "data-not-found": kind },
    h("h2", null, kind === "page" ? "Nothing here" : `No ${kind} `, kind === "page" ? null : h("code", null, id)),
    h(
      "p.muted",
      null,
      kind === "run"
        ? "This server has no run with that id (or your token may not see its project). Run ids are shown in the runs table and printed by the SDK and `loupe run`."
        : kind === "project"
          ? "This server has no project by that name yet: a project appears with its first run."
          : kind === "runs to compare"
            ? "None of the runs in this comparison exist on this server."
            : h("span", null, "No page at ", h("code", null, id), "."),
    ),
    h("p", null, h("a.button", { href: where.href }, where.label)),
  );
}
