/**
 * File access through `node:fs/promises`, which behaves the same in Deno and
 * Node. The rest of spokewire sees only these functions.
 *
 * @module
 */

import { chmod, readFile, rename, rm, writeFile } from "node:fs/promises";

/** Read a whole file as bytes. */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  const b = await readFile(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Read a whole file as UTF-8 text. */
export async function readFileText(path: string): Promise<string> {
  return await readFile(path, "utf8");
}

/**
 * Write a file atomically (temporary file in the same folder, then rename),
 * with permission bits `mode` (e.g. 0o600 for private keys).
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  mode: number,
): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await writeFile(tmp, data, { mode, flag: "wx" });
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
