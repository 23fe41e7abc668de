// The app shell: top bar, theme, keyboard, and the router picking a page.

import "./style.css";
import { compactHeader, renderHelp } from "./shell";
import * as keys from "./keys";
import { parse, start, type Cleanup } from "./router";
import { projectsPage } from "./pages/projects";
import { runsPage } from "./pages/runs";
import { runPage } from "./pages/run";
import { comparePage } from "./pages/compare";
import { alertsPage } from "./pages/alerts";
import { notFound } from "./pages/empty";
import * as format from "./format";
import * as time from "./time";
import { Chart } from "./chart";
import { h } from "./util";

const app = document.getElementById("app")!;
const header = compactHeader();
const main = h("main", { id: "page" });
app.append(header.el, main);

let cleanup: Cleanup | void;

function render(): void {
  if (cleanup) cleanup();
  cleanup = undefined;
  keys.pageKeys({});
  main.replaceChildren();
  window.__loupe.navStart = performance.now();
  const route = parse(location);
  header.setRoute(route);
  switch (route.name) {
    case "projects":
      cleanup = projectsPage(main, route);
      break;
    case "runs":
      keys.setCurrentProject(route.arg);
      cleanup = runsPage(main, route);
      break;
    case "run":
      cleanup = runPage(main, route);
      break;
    case "compare":
      cleanup = comparePage(main, route);
      break;
    case "alerts":
      cleanup = alertsPage(main, route);
      break;
    default:
      main.append(notFound("page", route.arg));
  }
}

window.__loupe.format = format;
window.__loupe.time = time;
window.__loupe.Chart = Chart;
keys.install();
keys.globalKeys({
  t: () => header.cycleTheme(),
  "?": () => renderHelp(),
});
start(render);
