/**
 * The built package, imported the way a Node consumer imports it: by name,
 * through package.json "exports" -> dist/. `npm test` builds dist/ first.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
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

/** Every `.js` file under `dir`. Bounded: at most 10 000 files. */
function jsFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) jsFiles(p, out);
    else if (name.endsWith(".js")) out.push(p);
    if (out.length > 10_000) throw new Error("dist/ has over 10 000 .js files");
  }
  return out;
}

test("dist/ ships no test fixtures, and imports only dependencies and optional peers", () => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
    peerDependencies?: Record<string, string>;
  };
  const allowed = new Set([
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.peerDependencies ?? {}),
  ]);
  const files = jsFiles(join(root, "dist"));
  assert.ok(files.length > 0, "dist/ is empty: run `npm run build`");
  const fixtures = files.filter((f) => f.includes("_fixtures"));
  assert.deepEqual(fixtures, [], "test fixtures in dist/");
  const bad: string[] = [];
  for (const f of files) {
    // Code only: doc comments hold examples that import "spokewire" by name.
    const text = readFileSync(f, "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "");
    for (const m of text.matchAll(/(?:from\s*|import\s*\(\s*|import\s+)["']([^"']+)["']/g)) {
      const spec = m[1] as string;
      if (spec.startsWith(".") || spec.startsWith("node:")) continue;
      const parts = spec.split("/");
      const name = spec.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] as string);
      if (!allowed.has(name)) bad.push(`${f.slice(root.length)}: ${spec}`);
    }
  }
  assert.deepEqual(bad, [], "dist/ imports packages that are not dependencies");
});

test("spokewire/testing is importable by name: the conformance suite for other transports", () => {
  const script = `
    const t = await import("spokewire/testing");
    console.log(JSON.stringify({ suite: typeof t.describeChannelConformance }));
  `;
  const nodeBin = process.env.SPOKEWIRE_NODE ?? "node";
  const out = execFileSync(nodeBin, ["--input-type=module", "-e", script], {
    cwd: root,
    encoding: "utf8",
  });
  assert.deepEqual(JSON.parse(out.trim()), { suite: "function" });
});
