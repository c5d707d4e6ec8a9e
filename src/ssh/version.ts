/**
 * Protocol version exchange (RFC 4253 §4.2) with a bounded banner: lines
 * before the identification line are allowed but capped in length and count.
 *
 * @module
 */

import { ProtocolError } from "../channel/errors.ts";
import { fromUtf8, utf8 } from "./wire.ts";

/** Longest identification line, CR LF included (RFC 4253 §4.2). */
export const MAX_IDENT_LINE = 255;
/** Most bytes of pre-identification lines we read before giving up. */
export const MAX_PRE_BANNER_BYTES = 8 * 1024;
/** Most pre-identification lines. */
export const MAX_PRE_BANNER_LINES = 32;

/** Our identification string (without CR LF). */
export const CLIENT_IDENT = "SSH-2.0-spokewire_0.1";

/** Our identification line as bytes. */
export function clientIdentLine(ident: string = CLIENT_IDENT): Uint8Array {
  return utf8(`${ident}\r\n`);
}

/** Reads the server's identification line from the first bytes of a connection. */
export class VersionReader {
  #buf = new Uint8Array(0);
  #lines = 0;
  #consumed = 0;

  /**
   * Feed bytes. Returns the server identification (without CR LF) and the
   * bytes after it, or undefined while more are needed. Throws ProtocolError.
   */
  push(chunk: Uint8Array): { ident: string; rest: Uint8Array } | undefined {
    const merged = new Uint8Array(this.#buf.byteLength + chunk.byteLength);
    merged.set(this.#buf);
    merged.set(chunk, this.#buf.byteLength);
    this.#buf = merged;
    for (;;) {
      const nl = this.#buf.indexOf(0x0a);
      if (nl < 0) {
        if (this.#buf.byteLength > MAX_IDENT_LINE) {
          throw new ProtocolError(`SSH banner line longer than ${MAX_IDENT_LINE} bytes`);
        }
        return undefined;
      }
      const lineBytes = this.#buf.subarray(0, nl + 1);
      const rest = this.#buf.subarray(nl + 1);
      let line = fromUtf8(lineBytes.subarray(0, nl));
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line.startsWith("SSH-")) {
        if (lineBytes.byteLength > MAX_IDENT_LINE) {
          throw new ProtocolError(`SSH identification longer than ${MAX_IDENT_LINE} bytes`);
        }
        if (!/^SSH-(2\.0|1\.99)-[\x21-\x2c\x2e-\x7e]+( [\x20-\x7e]*)?$/.test(line)) {
          throw new ProtocolError(
            `unsupported SSH identification ${JSON.stringify(line.slice(0, 80))}`,
          );
        }
        return { ident: line, rest };
      }
      this.#lines++;
      this.#consumed += lineBytes.byteLength;
      if (this.#lines > MAX_PRE_BANNER_LINES || this.#consumed > MAX_PRE_BANNER_BYTES) {
        throw new ProtocolError("no SSH identification within the pre-banner limit");
      }
      if (lineBytes.byteLength > MAX_IDENT_LINE) {
        throw new ProtocolError(`SSH banner line longer than ${MAX_IDENT_LINE} bytes`);
      }
      this.#buf = rest.slice();
    }
  }
}
