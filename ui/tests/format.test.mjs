// The web UI's number formatting (src/format.ts) against the case table it
// shares with the Rust side (crates/loupe-model/tests/data/units.json), so a
// series reads the same in the UI, the CLI and diagnosis text. No browser:
// format.ts has no imports, and TypeScript's own transpiler turns it into a
// module Node can load.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const source = readFileSync(join(here, "../src/format.ts"), "utf8");
const js = ts.transpileModule(source, {
  compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
}).outputText;
const file = join(mkdtempSync(join(tmpdir(), "loupe-format-")), "format.mjs");
writeFileSync(file, js);
const format = await import(pathToFileURL(file).href);
const table = JSON.parse(
  readFileSync(join(here, "../../crates/loupe-model/tests/data/units.json"), "utf8"),
);

test("series names give the units of the shared table", () => {
  assert.ok(table.unit_of.length >= 20);
  for (const [name, unit] of table.unit_of) {
    assert.equal(format.unitOf(name), unit, `unit of ${name}`);
  }
});

test("values read as the shared table says", () => {
  assert.ok(table.format.length >= 20);
  for (const [x, unit, text] of table.format) {
    assert.equal(format.fmtUnit(x, unit), text, `${x} in ${unit}`);
  }
});
