/**
 * Which external programs this machine has, and the Debian package that brings each.
 * Shared by the tests (skip or fail) and the bench (skip a row with a reason).
 *
 * @module
 */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import process from "node:process";

/** The external programs the tests and the bench may use, with their Debian package. */
export const PROGRAMS = {
  sshd: "openssh-server",
  ssh: "openssh-client",
  "ssh-keygen": "openssh-client",
  "ssh-keyscan": "openssh-client",
  openssl: "openssl",
  curl: "curl",
  protoc: "protobuf-compiler",
  socat: "socat",
  chromium: "chromium",
  "rsvg-convert": "librsvg2-bin",
} as const;

/** A program name known to {@link PROGRAMS}. */
export type ProgramName = keyof typeof PROGRAMS;

const found = new Map<string, string | undefined>();

/** The absolute path of `name` on PATH (plus /usr/sbin, /usr/local/sbin), or undefined. */
export function findProgram(name: ProgramName): string | undefined {
  if (found.has(name)) return found.get(name);
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter),
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
  ];
  let hit: string | undefined;
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      hit = p;
      break;
    } catch {
      // not here
    }
  }
  found.set(name, hit);
  return hit;
}

/** "sshd not installed (Debian package openssh-server)" for the first missing program, or undefined. */
export function missingProgram(...names: readonly ProgramName[]): string | undefined {
  for (const n of names) {
    if (!findProgram(n)) return `${n} not installed (Debian package ${PROGRAMS[n]})`;
  }
  return undefined;
}
