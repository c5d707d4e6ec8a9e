import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AbortedError } from "../../src/channel/errors.ts";
import {
  type CertificateAuthority,
  type CertificateMaterial,
  CertificateRotator,
  createRootCa,
  DEFAULT_ROTATION_CONFIG,
  issueCredential,
  verifyRotationConfig,
} from "../../src/pki/mod.ts";
import { ManualClock } from "../_harness/pki_clock.ts";

const DAY = 86_400_000;
const T0 = Date.parse("2032-03-01T00:00:00Z");

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function fixture() {
  const ca = await createRootCa({ commonName: "rot-ca", now: new Date(T0 - DAY) });
  const clock = new ManualClock(T0);
  const issue = (c: CertificateAuthority) =>
    issueCredential(c, {
      profile: "client",
      commonName: "system:node:n1",
      validityMs: 10 * DAY,
      now: new Date(clock.now()),
      config: {
        leafValidityMs: 10 * DAY,
        maxLeafValidityMs: 30 * DAY,
        caValidityMs: 365 * DAY,
        maxCaValidityMs: 3650 * DAY,
        backdateMs: 0,
      },
    });
  return { ca, clock, issue, initial: await issue(ca) };
}

describe("CertificateRotator", () => {
  test("renews once the configured fraction of the lifetime has passed, not before", async () => {
    const { ca, clock, issue, initial } = await fixture();
    let renewals = 0;
    let rotated = deferred<CertificateMaterial>();
    const r = new CertificateRotator({
      initial,
      clock,
      config: { renewAtFraction: 0.5 },
      renew: async () => {
        renewals++;
        return await issue(ca);
      },
      onRotate: (m) => rotated.resolve(m),
    });
    r.start();
    assert.equal(r.renewAt, T0 + 5 * DAY);
    clock.advanceTo(T0 + 5 * DAY - 1000);
    assert.equal(renewals, 0);
    assert.equal(r.current, initial);
    clock.advanceTo(T0 + 5 * DAY);
    const first = await rotated.promise;
    assert.equal(renewals, 1);
    assert.equal(r.current, first);
    assert.notEqual(first.certificate.serialNumber, initial.certificate.serialNumber);
    // The next renewal is scheduled at half of the new certificate's lifetime.
    assert.equal(r.renewAt, clock.now() + 5 * DAY);
    assert.equal(clock.nextAt, r.renewAt);
    rotated = deferred();
    clock.advanceTo(r.renewAt);
    await rotated.promise;
    assert.equal(renewals, 2);
    await r.stop();
    assert.equal(clock.pending, 0);
  });

  test("an overdue certificate is renewed at start", async () => {
    const { ca, clock, issue, initial } = await fixture();
    clock.advanceTo(T0 + 9 * DAY);
    const rotated = deferred<CertificateMaterial>();
    const r = new CertificateRotator({
      initial,
      clock,
      renew: () => issue(ca),
      onRotate: (m) => rotated.resolve(m),
    });
    r.start();
    clock.advanceTo(clock.now());
    await rotated.promise;
    await r.stop();
  });

  test("a failed renewal is reported and retried after retryDelayMs; the old material stays", async () => {
    const { ca, clock, issue, initial } = await fixture();
    const errors: unknown[] = [];
    let attempts = 0;
    const failed = deferred<void>();
    const rotated = deferred<CertificateMaterial>();
    const r = new CertificateRotator({
      initial,
      clock,
      config: { retryDelayMs: 60_000 },
      renew: async () => {
        attempts++;
        if (attempts === 1) throw new Error("CA unreachable");
        return await issue(ca);
      },
      onRotate: (m) => rotated.resolve(m),
      onError: (e) => {
        errors.push(e);
        failed.resolve();
      },
    });
    r.start();
    clock.advanceTo(r.renewAt);
    await failed.promise;
    assert.equal(r.current, initial);
    assert.equal(clock.nextAt, clock.now() + 60_000);
    clock.advanceTo(clock.now() + 59_999);
    assert.equal(attempts, 1);
    clock.advanceTo(clock.now() + 1);
    await rotated.promise;
    assert.equal(attempts, 2);
    assert.equal(errors.length, 1);
    await r.stop();
  });

  test("a renewal returning an expired certificate is refused", async () => {
    const { ca, clock, initial } = await fixture();
    const old = await issueCredential(ca, {
      profile: "client",
      commonName: "x",
      validityMs: DAY,
      now: new Date(T0 - 5 * DAY),
    });
    const failed = deferred<unknown>();
    const r = new CertificateRotator({
      initial,
      clock,
      renew: async () => old,
      onRotate: () => {},
      onError: (e) => failed.resolve(e),
    });
    await assert.rejects(r.rotateNow(), RangeError);
    assert.ok((await failed.promise) instanceof RangeError);
    assert.equal(r.current, initial);
    await r.stop();
  });

  test("rotateNow coalesces; stop aborts the renewal in flight and refuses new ones", async () => {
    const { clock, initial } = await fixture();
    let seen: AbortSignal | undefined;
    let calls = 0;
    const r = new CertificateRotator({
      initial,
      clock,
      renew: (_c, signal) => {
        calls++;
        seen = signal;
        return new Promise<CertificateMaterial>(() => {});
      },
      onRotate: () => {},
    });
    const a = r.rotateNow();
    const b = r.rotateNow();
    await r.stop();
    await assert.rejects(a, AbortedError);
    await assert.rejects(b, AbortedError);
    assert.equal(calls, 1);
    assert.equal(seen?.aborted, true);
    await assert.rejects(r.rotateNow(), AbortedError);
    assert.throws(() => r.start(), /illegal state/);
  });

  test("config is validated", () => {
    assert.throws(
      () => verifyRotationConfig({ ...DEFAULT_ROTATION_CONFIG, renewAtFraction: 1 }),
      /renewAtFraction/,
    );
    assert.throws(
      () => verifyRotationConfig({ ...DEFAULT_ROTATION_CONFIG, retryDelayMs: 0 }),
      /retryDelayMs/,
    );
  });
});
