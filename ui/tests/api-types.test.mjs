// The UI's API types (src/api.gen.ts) are generated from the server's
// OpenAPI document (openapi.json) by openapi-typescript; this fails when
// they are stale. The server's own test (`cargo test -p loupe-server --test
// openapi`) checks openapi.json against the server and rewrites both.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const ui = fileURLToPath(new URL("..", import.meta.url));

test("src/api.gen.ts is generated from openapi.json", async () => {
  const doc = JSON.parse(readFileSync(`${ui}/openapi.json`, "utf8"));
  const want = astToString(await openapiTS(doc));
  const have = readFileSync(`${ui}/src/api.gen.ts`, "utf8");
  // Compared from the first declaration: the headers differ (the file's
  // says how to regenerate it).
  const from = (text) => text.slice(text.indexOf("export interface paths")).trimEnd();
  assert.ok(
    from(have) === from(want) && from(want).length > 0,
    "src/api.gen.ts is stale: run `LOUPE_BLESS=1 cargo test -p loupe-server --test openapi` and commit the result",
  );
});
