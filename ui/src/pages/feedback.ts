// Feedback on an incident's causes and fixes: "confirmed" / "wrong" on each
// cause, "worked" on each fix, stored through the API, and what the
// project's feedback did to the ranking (weights per cause).

import { incidentFeedback, projectFeedback, sendFeedback } from "../api";
import type { Cause, FeedbackEntry, Incident, Verdict } from "../api";
import { fmtNum, fmtTime, h } from "../util";

const LABELS: Record<Verdict, string> = { confirmed: "✓ Confirmed", wrong: "✗ Wrong", worked: "✓ Worked" };

function button(inc: Incident, cause: Cause, verdict: Verdict, fix?: string): HTMLButtonElement {
  const b = h("button.fb", { type: "button", "data-verdict": verdict, "data-cause": cause.kind, title: verdict === "worked" ? "This fix is the one that worked" : `This cause was ${verdict === "confirmed" ? "the right one" : "wrong"}` }, LABELS[verdict]);
  if (fix !== undefined) b.dataset.fix = fix;
  b.addEventListener("click", async () => {
    const status = b.closest(".incident")?.querySelector<HTMLElement>(".fb-status");
    b.disabled = true;
    try {
      const e = await sendFeedback(inc.id, { cause: cause.kind, verdict, fix });
      mark(b, e);
      if (status) status.textContent = "Recorded: the next incidents in this project are ranked with it.";
    } catch (err) {
      if (status) status.textContent = `Not recorded: ${(err as Error).message}`;
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function mark(b: HTMLElement, e: FeedbackEntry): void {
  b.classList.add("on");
  const n = Number(b.dataset.count ?? "0") + 1;
  b.dataset.count = String(n);
  b.title = `${n > 1 ? `${n} marks, last ` : ""}by ${e.who}, ${fmtTime(e.time)}`;
}

/** The "confirmed" / "wrong" buttons of a cause. */
export function causeButtons(inc: Incident, cause: Cause): HTMLElement {
  return h("span.fb-cause", null, button(inc, cause, "confirmed"), button(inc, cause, "wrong"));
}

/** The "worked" button of one of a cause's fixes. */
export function fixButton(inc: Incident, cause: Cause, fix: string): HTMLElement {
  return button(inc, cause, "worked", fix);
}

/** "Ranked with your feedback", with each cause's weight, when it applied. */
export function rankingNote(inc: Incident): HTMLElement | null {
  const fb = inc.feedback;
  if (!fb) return null;
  const moved = fb.causes.filter((c) => c.weight !== 1);
  return h(
    "div.fb-note",
    null,
    h("b", null, "Ranked with your feedback"),
    moved.length ? `: ${moved.map((c) => `${c.kind} ×${fmtNum(c.weight)} (score ${fmtNum(c.rule_score)} → ${fmtNum(c.ranked_score)})`).join(", ")}` : "",
    fb.fixes_reordered ? ` · fixes that worked before listed first` : "",
  );
}

/** Marks the buttons of the verdicts already stored for this incident. */
export async function showMarks(card: HTMLElement, inc: Incident): Promise<void> {
  let entries: FeedbackEntry[];
  try {
    entries = await incidentFeedback(inc.id);
  } catch {
    return; // A server without feedback: the buttons still say what they do.
  }
  for (const e of entries) {
    for (const b of card.querySelectorAll<HTMLElement>(`button.fb[data-verdict="${e.verdict}"]`)) {
      if (b.dataset.cause === e.cause && (e.fix === null || b.dataset.fix === e.fix)) mark(b, e);
    }
  }
}

/** The project's feedback weights, loaded after the tab is drawn. */
export function projectWeights(project: string): HTMLElement {
  const box = h("section.fb-weights", null, h("h4", null, "Feedback in this project"), h("p.muted", null, "Loading…"));
  void projectFeedback(project).then(
    (p) => {
      const rows = [
        ...p.causes.map((c) => h("tr", null, h("td", null, c.cause), h("td", null, `${c.confirmed} confirmed, ${c.wrong} wrong`), h("td.right", null, `×${fmtNum(c.weight)}`))),
        ...p.fixes.map((f) => h("tr", null, h("td", null, `${f.cause}: ${f.fix}`), h("td", null, `worked ${f.worked}×`), h("td.right", null, `×${fmtNum(f.weight)}`))),
      ];
      box.replaceChildren(
        h("h4", null, "Feedback in this project"),
        rows.length
          ? h("table.kv", null, h("tr", null, h("th", null, "Cause or fix"), h("th", null, "Marks"), h("th", null, "Weight")), ...rows)
          : h("p.muted", null, "No feedback yet: mark causes and fixes above, and the project's next incidents are ranked with it."),
      );
    },
    () => box.remove(),
  );
  return box;
}
