/**
 * A CONNECT client for bursts (`connectClient`), with bytes of its own (`payload`)
 * that must come back.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { connect } from "node:net";

/** What became of one CONNECT client. */
export interface Outcome {
  /** The response's status (0: none came). */
  status: number;
  /** The response's Retry-After header, if any. */
  retryAfter?: string;
  /** 200 only: every byte sent came back, in order. */
  echoed?: boolean;
  /** Anything that went wrong: a socket error, an early close, a timeout. */
  error?: string;
}

/** The bytes client `i` sends (and must get back). */
export function payload(i: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = (i * 2654435761) >>> 0;
  for (let k = 0; k < n; k++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[k] = x >>> 24;
  }
  return b;
}

/**
 * One CONNECT client on `sock` (a Unix socket's path, or `host:port` for TCP): its
 * status, and whether its bytes came back intact. Never rejects: a failure is an
 * `Outcome` with `error`.
 */
export function connectClient(
  sock: string,
  target: string,
  data: Uint8Array,
  timeoutMs = 60_000,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const tcp = /^(.+):(\d+)$/.exec(sock);
    const s = tcp ? connect({ host: tcp[1], port: Number(tcp[2]) }) : connect(sock);
    const chunks: Uint8Array[] = [];
    let head: string | undefined;
    let status = 0;
    let got = 0;
    let settled = false;
    const done = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(o);
    };
    const timer = setTimeout(
      () => done({ status, error: `no outcome within ${timeoutMs} ms (${got} bytes back)` }),
      timeoutMs,
    );
    s.on("connect", () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    let buf = Buffer.alloc(0);
    s.on("data", (b: Buffer) => {
      if (head === undefined) {
        buf = Buffer.concat([buf, b]);
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        head = buf.subarray(0, end).toString("latin1");
        status = Number(head.split(" ")[1]);
        if (status !== 200) {
          done({ status, retryAfter: /\r\nRetry-After: (\S+)/i.exec(head)?.[1] });
          return;
        }
        s.write(data);
        b = buf.subarray(end + 4);
      }
      if (b.length > 0) {
        chunks.push(b);
        got += b.length;
      }
      if (got >= data.length) {
        const all = Buffer.concat(chunks);
        done({ status: 200, echoed: all.length === data.length && all.equals(Buffer.from(data)) });
      }
    });
    s.on("error", (e) => done({ status, error: `${(e as Error).message} (${got} bytes back)` }));
    s.on("close", () =>
      done({ status, error: `closed after ${got} of ${data.length} bytes (head ${head})` }),
    );
  });
}
