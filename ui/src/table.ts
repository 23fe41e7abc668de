// A virtualised table: only the rows in view (plus a margin) exist in the
// DOM, so 10k or 100k rows scroll and sort as fast as 50.

import { h } from "./util";

export interface Column<T> {
  id: string;
  label: string;
  width: number;
  render: (row: T) => Node | string;
  title?: string;
  align?: "right";
  sortable?: boolean;
}

export interface TableOptions<T> {
  columns: Column<T>[];
  key: (row: T) => string;
  sort: { col: string; desc: boolean } | null;
  onSort: (col: string) => void;
  onOpen: (row: T) => void;
  selected: Set<string>;
  onSelect: () => void;
  empty: string;
}

const ROW = 30;
const OVERSCAN = 8;

export class VTable<T> {
  readonly el: HTMLElement;
  private head: HTMLElement;
  private rowsEl: HTMLElement;
  private spacer: HTMLElement;
  private emptyEl: HTMLElement;
  private rows: T[] = [];
  private cursor = -1;
  private frame = 0;
  private template = "";

  constructor(private opts: TableOptions<T>) {
    this.head = h("div.vt-head", { role: "row" });
    this.rowsEl = h("div.vt-rows");
    this.spacer = h("div.vt-spacer", null, this.rowsEl);
    this.emptyEl = h("div.vt-empty.muted", null, opts.empty);
    this.el = h("div.vt", { role: "grid", tabindex: "0" }, this.head, this.spacer, this.emptyEl);
    this.el.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.el);
    this.setColumns(opts.columns);
  }

  setColumns(cols: Column<T>[]): void {
    this.opts.columns = cols;
    this.template = `34px ${cols.map((c) => `${c.width}px`).join(" ")}`;
    const total = 34 + cols.reduce((a, c) => a + c.width, 0);
    this.head.style.gridTemplateColumns = this.template;
    this.head.style.width = this.spacer.style.width = `${Math.max(total, 0)}px`;
    this.renderHead();
    this.render();
  }

  setSort(sort: { col: string; desc: boolean } | null): void {
    this.opts.sort = sort;
    this.renderHead();
  }

  setRows(rows: T[]): void {
    this.rows = rows;
    if (this.cursor >= rows.length) this.cursor = rows.length - 1;
    this.spacer.style.height = `${rows.length * ROW}px`;
    this.emptyEl.hidden = rows.length > 0;
    this.render();
  }

  get length(): number {
    return this.rows.length;
  }

  current(): T | null {
    return this.rows[this.cursor] ?? null;
  }

  moveCursor(delta: number): void {
    if (!this.rows.length) return;
    this.cursor = Math.max(0, Math.min(this.rows.length - 1, (this.cursor < 0 ? -1 : this.cursor) + delta));
    const top = this.cursor * ROW;
    const view = this.el.clientHeight - ROW;
    if (top < this.el.scrollTop) this.el.scrollTop = top;
    else if (top > this.el.scrollTop + view - ROW) this.el.scrollTop = top - view + ROW;
    this.render();
  }

  toggleCurrent(): void {
    const r = this.current();
    if (!r) return;
    this.toggle(this.opts.key(r));
  }

  refresh(): void {
    this.render();
  }

  private toggle(k: string): void {
    const sel = this.opts.selected;
    if (sel.has(k)) sel.delete(k);
    else sel.add(k);
    this.opts.onSelect();
    this.render();
  }

  private renderHead(): void {
    const { sort, columns } = this.opts;
    const all = h("input", { type: "checkbox", title: "Select all shown (max 20)", "aria-label": "select all" });
    all.addEventListener("change", () => {
      const sel = this.opts.selected;
      if (all.checked) for (const r of this.rows.slice(0, 20)) sel.add(this.opts.key(r));
      else sel.clear();
      this.opts.onSelect();
      this.render();
    });
    this.head.replaceChildren(
      h("div.vt-cell", null, all),
      ...columns.map((c) => {
        const active = sort?.col === c.id;
        const cell = h(
          "div.vt-cell.vt-hcell",
          {
            role: "columnheader",
            title: c.title ?? c.label,
            "data-col": c.id,
            class: [c.align === "right" ? "right" : "", c.sortable === false ? "" : "sortable", active ? "sorted" : ""].join(" "),
            "aria-sort": active ? (sort!.desc ? "descending" : "ascending") : null,
          },
          c.label,
          active ? (sort!.desc ? " ▼" : " ▲") : "",
        );
        if (c.sortable !== false) cell.addEventListener("click", () => this.opts.onSort(c.id));
        return cell;
      }),
    );
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  private render(): void {
    const headH = this.head.offsetHeight || ROW;
    const top = Math.max(0, this.el.scrollTop - headH);
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const visible = Math.ceil((this.el.clientHeight || 800) / ROW) + 2 * OVERSCAN;
    const last = Math.min(this.rows.length, first + visible);
    const frag = document.createDocumentFragment();
    const { columns, key, selected } = this.opts;
    for (let i = first; i < last; i++) {
      const r = this.rows[i];
      const k = key(r);
      const box = h("input", { type: "checkbox", "aria-label": "select" });
      box.checked = selected.has(k);
      box.addEventListener("change", () => this.toggle(k));
      const row = h(
        "div.vt-row",
        {
          role: "row",
          "data-key": k,
          "data-index": i,
          class: [i === this.cursor ? "cursor" : "", selected.has(k) ? "selected" : ""].join(" "),
        },
        h("div.vt-cell", null, box),
        ...columns.map((c) => h("div.vt-cell", { class: c.align === "right" ? "right" : "" }, c.render(r))),
      );
      row.style.gridTemplateColumns = this.template;
      row.style.top = `${i * ROW}px`;
      row.addEventListener("click", (ev) => {
        const t = ev.target as HTMLElement;
        if (t.closest("input,a,button")) return;
        this.cursor = i;
        this.opts.onOpen(r);
      });
      frag.append(row);
    }
    this.rowsEl.replaceChildren(frag);
  }
}
