/**
 * The built package, imported the way a Node consumer imports it: by name,
 * through package.json "exports" -> dist/. `npm test` builds dist/ first.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

test("dist/ is importable by package name from plain Node, and works", () => {
  assert.ok(existsSync(`${root}/dist/mod.js`), "dist/mod.js missing: run `npm run build`");
  assert.ok(existsSync(`${root}/dist/mod.d.ts`), "dist/mod.d.ts missing");
  const script = `
    const m = await import("spokewire");
    const { a, b } = m.memoryPair();
    const w = a.writable.getWriter();
    await w.write(new TextEncoder().encode("consumer"));
    await w.close();
    const r = b.readable.getReader();
    const { value } = await r.read();
    const e = new m.ChannelResetError("x");
    console.log(JSON.stringify({ got: new TextDecoder().decode(value), code: e.code, isBase: e instanceof m.SpokewireError }));
  `;
  const nodeBin = process.env.SPOKEWIRE_NODE ?? "node";
  const out = execFileSync(nodeBin, ["--input-type=module", "-e", script], {
    cwd: root,
    encoding: "utf8",
  });
  assert.deepEqual(JSON.parse(out.trim()), {
    got: "consumer",
    code: "CHANNEL_RESET",
    isBase: true,
  });
});
