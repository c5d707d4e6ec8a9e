/**
 * {@link SshTunnelDialer}: direct-tcpip channels through each node's sshd, one
 * SSH connection per node, reused by every dial, reconnected with backoff.
 *
 * @module
 */

import { bounded } from "../_util/deadline.ts";
import { AbortedError, DialError, SpokewireError } from "../channel/errors.ts";
import type { Channel, Dialer, DialOptions } from "../channel/types.ts";
import { type SshClientConfig, verifySshClientConfig } from "./config.ts";
import { SshConnection, type SshConnectOptions } from "./connection.ts";
import {
  createHostKeyVerifier,
  type HostKeyPolicy,
  type HostKeyVerifier,
} from "./host_key_policy.ts";
import { parseOpenSshPrivateKey, type SshPrivateKey } from "./private_key.ts";

/** A node's sshd. */
export interface SshNode {
  readonly host: string;
  /** Default 22. */
  readonly port?: number;
}

/** Where to dial: through `node`'s sshd to `host:port` (as the node resolves it). */
export interface SshTunnelTarget {
  readonly node: SshNode;
  readonly host: string;
  readonly port: number;
}

/** Options of {@link SshTunnelDialer}: everything of a connection except where it goes. */
export type SshTunnelDialerOptions = Omit<SshConnectOptions, "host" | "port" | "signal">;

type Slot = {
  conn?: SshConnection;
  connecting?: Promise<SshConnection>;
  cancel?: AbortController;
  waiters: number;
  failures: number;
  retryAt: number;
};

/**
 * Dials through SSH tunnels.
 *
 * @example
 * ```ts ignore
 * import { readCredentialFile, SshTunnelDialer } from "spokewire";
 * const dialer = new SshTunnelDialer({
 *   username: "tunnel",
 *   privateKey: await readCredentialFile("/etc/spokewire/id_ed25519"),
 *   hostKeys: { knownHosts: await readCredentialFile("/etc/spokewire/known_hosts") },
 * });
 * const ch = await dialer.dial({ node: { host: "node-1" }, host: "127.0.0.1", port: 10250 });
 * ```
 */
export class SshTunnelDialer implements Dialer<SshTunnelTarget> {
  readonly #opts: SshTunnelDialerOptions;
  readonly #config: SshClientConfig;
  readonly #slots = new Map<string, Slot>();
  #verifier: HostKeyVerifier;
  #key: Promise<SshPrivateKey> | undefined;
  #closed = false;

  constructor(options: SshTunnelDialerOptions) {
    this.#config = verifySshClientConfig(options.config);
    this.#verifier =
      typeof (options.hostKeys as HostKeyVerifier).verify === "function"
        ? (options.hostKeys as HostKeyVerifier)
        : createHostKeyVerifier(options.hostKeys as HostKeyPolicy);
    this.#opts = options;
    if (typeof options.privateKey === "string") {
      this.#key = parseOpenSshPrivateKey(options.privateKey);
      this.#key.catch(() => {});
    }
  }

  /** Open a channel to `target` through its node's SSH connection. */
  async dial(target: SshTunnelTarget, options: DialOptions = {}): Promise<Channel> {
    if (this.#closed) throw new DialError("SshTunnelDialer is closed");
    if (options.signal?.aborted)
      throw new AbortedError("SSH dial was aborted", { cause: options.signal.reason });
    const conn = await this.connection(target.node, options);
    return conn.openDirectTcpip({ host: target.host, port: target.port }, options);
  }

  /** The live connection to `node`, connecting (with backoff after failures) if needed. */
  async connection(node: SshNode, options: DialOptions = {}): Promise<SshConnection> {
    const port = node.port ?? 22;
    const key = `${node.host}:${port}`;
    let slot = this.#slots.get(key);
    if (!slot) {
      slot = { waiters: 0, failures: 0, retryAt: 0 };
      this.#slots.set(key, slot);
    }
    if (slot.conn?.alive) return slot.conn;
    slot.conn = undefined;
    if (!slot.connecting) {
      const s = slot;
      const cancel = new AbortController();
      s.cancel = cancel;
      s.connecting = (async () => {
        const wait = s.retryAt - Date.now();
        if (wait > 0) {
          await bounded(new Promise<void>((r) => setTimeout(r, wait)), {
            timeoutMs: wait + 1000,
            what: "reconnect backoff",
            signal: cancel.signal,
          });
        }
        const privateKey = this.#key ? await this.#key : this.#opts.privateKey;
        return SshConnection.connect({
          ...this.#opts,
          hostKeys: this.#verifier,
          privateKey,
          host: node.host,
          port,
          signal: cancel.signal,
        });
      })();
      s.connecting.then(
        (c) => {
          s.connecting = undefined;
          s.failures = 0;
          s.retryAt = 0;
          if (this.#closed) {
            c.close();
            return;
          }
          s.conn = c;
          // When it dies, the next dial reconnects at once (it was working).
          c.closed.then(() => {
            if (s.conn === c) s.conn = undefined;
          });
        },
        () => {
          s.connecting = undefined;
          s.failures++;
          const delay = Math.min(
            this.#config.reconnectMaxDelayMs,
            this.#config.reconnectMinDelayMs * 2 ** Math.min(s.failures - 1, 20),
          );
          s.retryAt = Date.now() + delay;
        },
      );
    }
    slot.waiters++;
    const s = slot;
    try {
      return await bounded(s.connecting!, {
        timeoutMs:
          this.#config.connectTimeoutMs +
          this.#config.handshakeTimeoutMs +
          this.#config.reconnectMaxDelayMs,
        what: `SSH connection to ${key}`,
        signal: options.signal,
        onCancel: () => {
          if (s.waiters === 1)
            s.cancel?.abort(new AbortedError("no dial waits for this connection"));
        },
      });
    } catch (err) {
      if (err instanceof SpokewireError) throw err;
      throw new DialError(`SSH connection to ${key} failed: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      s.waiters--;
    }
  }

  /** Channels open or closing over all connections (for leak checks). */
  get channelCount(): number {
    let n = 0;
    for (const s of this.#slots.values()) n += s.conn?.channelCount ?? 0;
    return n;
  }

  /** Close every connection; live channels error. */
  close(): void {
    this.#closed = true;
    for (const s of this.#slots.values()) {
      s.cancel?.abort(new AbortedError("dialer closed"));
      s.conn?.close();
    }
    this.#slots.clear();
  }
}
