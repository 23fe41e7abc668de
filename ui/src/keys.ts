// Keyboard navigation. Global keys: `/` search, `g p` projects, `g r` the
// current project's runs, `g a` alerts, `t` theme, `?` help. Pages add their own (`j`/`k`,
// Enter, `x`, `c`, `1`–`5`) with `pageKeys`.

import { navigate } from "./router";

type Handler = (ev: KeyboardEvent) => void;

let page: Record<string, Handler> = {};
let global: Record<string, Handler> = {};
let prefix: string | null = null;
let prefixTimer: ReturnType<typeof setTimeout> | undefined;

export const HELP: [string, string][] = [
  ["/", "focus the search or filter box"],
  ["j / k", "next / previous row"],
  ["Enter", "open the row"],
  ["x", "select the row (for compare)"],
  ["c", "compare the selected runs"],
  ["1 … 5", "run page tabs: charts, logs, system, config, diagnosis"],
  ["g p", "go to projects"],
  ["g r", "go to this project's runs"],
  ["g a", "go to alerts"],
  ["t", "switch theme (auto, dark, light)"],
  ["Esc", "leave a text box, close help"],
  ["?", "this help"],
];

export function pageKeys(keys: Record<string, Handler>): void {
  page = keys;
}

export function globalKeys(keys: Record<string, Handler>): void {
  global = keys;
}

let currentProject = "";
export function setCurrentProject(p: string): void {
  currentProject = p;
}

export function install(): void {
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target as HTMLElement;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    if (typing) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    if (prefix === "g") {
      prefix = null;
      clearTimeout(prefixTimer);
      if (ev.key === "p") navigate("/");
      else if (ev.key === "r" && currentProject) navigate(`/p/${encodeURIComponent(currentProject)}`);
      else if (ev.key === "a") navigate("/alerts");
      ev.preventDefault();
      return;
    }
    if (ev.key === "g") {
      prefix = "g";
      prefixTimer = setTimeout(() => (prefix = null), 1200);
      return;
    }
    if (ev.key === "/") {
      const box = document.querySelector<HTMLInputElement>("[data-search]");
      if (box) {
        ev.preventDefault();
        box.focus();
        box.select();
      }
      return;
    }
    const f = page[ev.key] ?? global[ev.key];
    if (f) {
      ev.preventDefault();
      f(ev);
    }
  });
}
