import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MalformedInputError } from "../../mod.ts";
import {
  formatKnownHostLine,
  hashHostName,
  type KnownHostEntry,
  knownHostEntryMatches,
  knownHostsName,
  parseKnownHosts,
} from "../../src/ssh/mod.ts";
import { fromBase64, SshWriter } from "../../src/ssh/wire.ts";

const hostName = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,30}$/);
const port = fc.oneof(fc.constant(22), fc.integer({ min: 1, max: 65535 }));
const ed25519Blob = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((k) => new SshWriter().string("ssh-ed25519").bytes(k).finish().slice());
const marker = fc.constantFrom("" as const, "@revoked" as const, "@cert-authority" as const);

/** Naive glob: * and ? through a RegExp. */
function naiveGlob(pattern: string, name: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`, "s").test(name);
}

describe("known_hosts properties", () => {
  it("plain and hashed entries round-trip through format and parse, and match their host", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            hostName,
            port,
            ed25519Blob,
            marker,
            fc.boolean(),
            fc.stringMatching(/^[a-z ]{0,12}$/),
          ),
          {
            minLength: 1,
            maxLength: 8,
          },
        ),
        (rows) => {
          const entries = rows.map(([h, p, blob, m, hashed, comment]) => {
            const name = knownHostsName(h, p);
            const hashedField = hashed ? hashHostName(name) : undefined;
            const e: Omit<KnownHostEntry, "line"> = {
              marker: m,
              patterns: hashed ? [] : [name],
              hashed: hashedField
                ? {
                    salt: fromBase64(hashedField.split("|")[2]!)!,
                    hash: fromBase64(hashedField.split("|")[3]!)!,
                  }
                : undefined,
              keyType: "ssh-ed25519",
              keyBlob: blob,
              comment: comment.trim().replace(/ +/g, " "),
            };
            return { e, name };
          });
          const text = `# comment\n\n${entries.map((x) => formatKnownHostLine(x.e)).join("\n")}\n`;
          const parsed = parseKnownHosts(text);
          assert.equal(parsed.length, entries.length);
          parsed.forEach((p, i) => {
            const { e, name } = entries[i]!;
            assert.equal(p.marker, e.marker);
            assert.deepEqual(p.patterns, e.patterns);
            assert.deepEqual(p.keyBlob, e.keyBlob);
            assert.equal(p.comment, e.comment);
            assert.equal(p.line, i + 3);
            assert.ok(knownHostEntryMatches(p, name), `entry ${i} does not match ${name}`);
            assert.ok(
              knownHostEntryMatches(p, name.toUpperCase()),
              "host names are case-insensitive",
            );
            assert.ok(!knownHostEntryMatches(p, `x${name}`), "matched a different host");
          });
        },
      ),
      { numRuns: 100 },
    );
  });

  it("wildcards equal a naive glob; negation excludes", () => {
    const patChar = fc.constantFrom("a", "b", ".", "*", "?");
    const nameChar = fc.constantFrom("a", "b", ".");
    fc.assert(
      fc.property(
        fc.array(patChar, { minLength: 1, maxLength: 8 }).map((a) => a.join("")),
        fc.array(nameChar, { maxLength: 10 }).map((a) => a.join("")),
        ed25519Blob,
        (pattern, name, blob) => {
          const e: KnownHostEntry = {
            marker: "",
            patterns: [pattern],
            keyType: "ssh-ed25519",
            keyBlob: blob,
            comment: "",
            line: 1,
          };
          assert.equal(knownHostEntryMatches(e, name), naiveGlob(pattern, name));
          const neg: KnownHostEntry = { ...e, patterns: ["*", `!${pattern}`] };
          assert.equal(knownHostEntryMatches(neg, name), !naiveGlob(pattern, name));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("random text parses or throws MALFORMED_INPUT, never anything else", () => {
    const line = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc
        .tuple(
          fc.constantFrom("", "@revoked ", "@cert-authority ", "@bogus "),
          fc.stringMatching(/^[|a-z0-9,[\]:*!]{0,30}$/),
          fc.constantFrom("ssh-ed25519", "ssh-rsa", "x", "ecdsa-sha2-nistp256"),
          fc.base64String({ maxLength: 80 }),
        )
        .map(([m, h, t, k]) => `${m}${h} ${t} ${k}`),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 10 }), (lines) => {
        try {
          const r = parseKnownHosts(lines.join("\n"));
          assert.ok(Array.isArray(r));
        } catch (e) {
          assert.ok(e instanceof MalformedInputError, `untyped ${e}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("a key whose blob names another type is refused", () => {
    fc.assert(
      fc.property(ed25519Blob, (blob) => {
        const line = `host ssh-rsa ${btoa(String.fromCharCode(...blob))}`;
        assert.throws(() => parseKnownHosts(line), MalformedInputError);
      }),
      { numRuns: 20 },
    );
  });
});
