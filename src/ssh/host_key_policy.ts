/**
 * Which host keys a connection trusts: known_hosts entries, pinned `SHA256:`
 * fingerprints, or (only by an option that says so) trust on first use.
 * Verification always runs before any credential is sent.
 *
 * @module
 */

import { PeerVerificationError } from "../channel/errors.ts";
import type { PeerIdentity } from "../channel/types.ts";
import { fingerprintHex, fingerprintSha256, HOST_KEY_ALGORITHMS, keyTypeOf } from "./host_key.ts";
import {
  type KnownHostEntry,
  knownHostEntryMatches,
  knownHostsName,
  parseKnownHosts,
} from "./known_hosts.ts";
import { equalBytes, toBase64 } from "./wire.ts";

/** How a connection decides to trust the server's host key. At least one source is required. */
export interface HostKeyPolicy {
  /** OpenSSH known_hosts text (or entries already parsed). */
  readonly knownHosts?: string | readonly KnownHostEntry[];
  /** Pinned OpenSSH fingerprints (`SHA256:base64`), as `ssh-keygen -lf` prints them. */
  readonly fingerprints?: readonly string[];
  /**
   * Trust on first use: a host with no known_hosts entry is accepted and this
   * callback gets the known_hosts line to persist. A host WITH entries is still
   * checked strictly. Dangerous on first contact; prefer pinning.
   */
  readonly trustOnFirstUse?: (knownHostsLine: string) => void | Promise<void>;
}

/** A policy ready to check keys. */
export interface HostKeyVerifier {
  /** Host key algorithms to offer, known types first (so the server picks a key we know). */
  preferredAlgorithms(host: string, port: number): string[];
  /** Throw {@link PeerVerificationError} unless `blob` is trusted for host:port. */
  verify(host: string, port: number, blob: Uint8Array, alg: string): Promise<PeerIdentity>;
}

/** Build a verifier; throws TypeError when the policy trusts nothing. */
export function createHostKeyVerifier(policy: HostKeyPolicy): HostKeyVerifier {
  if (typeof policy !== "object" || policy === null)
    throw new TypeError("hostKeys policy is required");
  const entries =
    typeof policy.knownHosts === "string"
      ? parseKnownHosts(policy.knownHosts)
      : (policy.knownHosts ?? []);
  const pins = policy.fingerprints ?? [];
  for (const p of pins) {
    if (typeof p !== "string" || !/^SHA256:[A-Za-z0-9+/]{43}$/.test(p)) {
      throw new TypeError(
        `hostKeys.fingerprints: ${JSON.stringify(p)} is not an OpenSSH SHA256: fingerprint`,
      );
    }
  }
  if (entries.length === 0 && pins.length === 0 && !policy.trustOnFirstUse) {
    throw new TypeError(
      "hostKeys: give knownHosts, fingerprints or trustOnFirstUse; host keys are always verified",
    );
  }
  const forHost = (host: string, port: number): KnownHostEntry[] => {
    const name = knownHostsName(host, port);
    return entries.filter((e) => knownHostEntryMatches(e, name));
  };
  return {
    preferredAlgorithms(host, port) {
      const types = new Set(
        forHost(host, port)
          .filter((e) => e.marker === "")
          .map((e) => e.keyType),
      );
      if (types.size === 0) return [...HOST_KEY_ALGORITHMS];
      const known = HOST_KEY_ALGORITHMS.filter((a) => types.has(keyTypeOf(a)));
      return [...known, ...HOST_KEY_ALGORITHMS.filter((a) => !known.includes(a))];
    },
    async verify(host, port, blob, alg) {
      const fp = fingerprintSha256(blob);
      const identity: PeerIdentity = {
        scheme: "ssh-host-key",
        id: fp,
        fingerprint: fingerprintHex(blob),
        details: { host, port, hostKeyAlgorithm: alg },
      };
      const where = `${host}:${port}`;
      const matching = forHost(host, port);
      if (matching.some((e) => e.marker === "@revoked" && equalBytes(e.keyBlob, blob))) {
        throw new PeerVerificationError(
          "host-key-revoked",
          `host key ${fp} of ${where} is marked @revoked`,
        );
      }
      if (pins.includes(fp)) return identity;
      const plain = matching.filter((e) => e.marker === "");
      if (plain.some((e) => equalBytes(e.keyBlob, blob))) return identity;
      if (plain.length > 0 || pins.length > 0) {
        throw new PeerVerificationError(
          "host-key-mismatch",
          `host key ${fp} (${alg}) of ${where} does not match the known or pinned keys`,
        );
      }
      if (matching.some((e) => e.marker === "@cert-authority")) {
        throw new PeerVerificationError(
          "unsupported",
          `${where} is covered only by @cert-authority entries; host certificates are not supported yet`,
        );
      }
      if (policy.trustOnFirstUse) {
        await policy.trustOnFirstUse(
          `${knownHostsName(host, port)} ${keyTypeOf(alg)} ${toBase64(blob)}`,
        );
        return identity;
      }
      throw new PeerVerificationError(
        "host-key-unknown",
        `no known host key for ${where} (server offered ${fp})`,
      );
    },
  };
}
