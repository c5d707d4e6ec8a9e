/**
 * The claim rules: what a verified agent may announce, and the first announcement
 * outside it, named for the refusal.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AgentIdentifiers,
  certificateClaims,
  claimOutside,
  combineClaims,
  staticClaims,
  verifyAgentClaims,
} from "../../mod.ts";

const ids = (o: Partial<AgentIdentifiers>): AgentIdentifiers => ({
  hosts: [],
  cidrs: [],
  defaultRoute: false,
  ...o,
});

const node1 = {
  id: "node-1",
  peer: {
    scheme: "x509",
    id: "system:node:node-1",
    fingerprint: "",
    details: { sans: { dns: ["Node-1.Example"], ip: ["10.0.0.1", "fd00::1"] } },
  },
} as const;

describe("Konnectivity agent claims", () => {
  it("by default: the node name and the certificate's SANs, nothing else", async () => {
    const allowed = certificateClaims(node1);
    assert.equal(
      claimOutside(ids({ hosts: ["node-1", "node-1.example", "10.0.0.1"] }), allowed),
      undefined,
    );
    assert.equal(
      claimOutside(ids({ hosts: ["fd00:0:0::1"] }), allowed),
      undefined,
      "IPv6 by value",
    );
    assert.equal(claimOutside(ids({ hosts: ["10.0.0.2"] }), allowed), "host 10.0.0.2");
    assert.equal(claimOutside(ids({ hosts: ["node-2"] }), allowed), "host node-2");
    assert.equal(claimOutside(ids({ hosts: ["010.0.0.1"] }), allowed), "host 010.0.0.1");
    assert.equal(claimOutside(ids({ cidrs: ["10.0.0.1/32"] }), allowed), "cidr 10.0.0.1/32");
    assert.equal(claimOutside(ids({ defaultRoute: true }), allowed), "default-route");
    // A token agent: its node name only.
    const token = certificateClaims({
      id: "n9",
      peer: { scheme: "token", id: "n9", fingerprint: "" },
    });
    assert.deepEqual(token.hosts, ["n9"]);
    assert.equal(claimOutside(ids({ hosts: ["10.0.0.1"] }), token), "host 10.0.0.1");
    assert.equal(claimOutside(ids({ hosts: ["x"] }), undefined), "host x");
    assert.equal(claimOutside(ids({}), undefined), undefined, "announcing nothing is fine");
  });

  it("CIDR blocks: a claimed block must lie inside an allowed one; IP hosts may too", () => {
    const allowed = { cidrs: ["10.1.0.0/16", "fd00:1::/32"] };
    assert.equal(claimOutside(ids({ cidrs: ["10.1.2.0/24", "10.1.0.0/16"] }), allowed), undefined);
    assert.equal(claimOutside(ids({ cidrs: ["10.0.0.0/8"] }), allowed), "cidr 10.0.0.0/8");
    assert.equal(claimOutside(ids({ cidrs: ["10.2.0.0/24"] }), allowed), "cidr 10.2.0.0/24");
    assert.equal(claimOutside(ids({ cidrs: ["fd00:1:2::/48"] }), allowed), undefined);
    assert.equal(claimOutside(ids({ cidrs: ["fd00::/16"] }), allowed), "cidr fd00::/16");
    assert.equal(claimOutside(ids({ hosts: ["10.1.200.3"] }), allowed), undefined);
    assert.equal(claimOutside(ids({ hosts: ["10.9.0.1"] }), allowed), "host 10.9.0.1");
  });

  it("a static map adds to the certificate's claims; combine keeps every grant", async () => {
    const policy = staticClaims({ "node-1": { cidrs: ["10.1.0.0/16"], defaultRoute: true } });
    const allowed = await policy(node1);
    assert.equal(
      claimOutside(
        ids({ hosts: ["10.0.0.1"], cidrs: ["10.1.1.0/24"], defaultRoute: true }),
        allowed,
      ),
      undefined,
    );
    const other = await policy({ ...node1, id: "node-2" });
    assert.equal(claimOutside(ids({ defaultRoute: true }), other), "default-route");
    assert.deepEqual(combineClaims({ hosts: ["a"] }, undefined, { defaultRoute: true }), {
      hosts: ["a"],
      cidrs: [],
      defaultRoute: true,
    });
  });

  it("claims are checked when given", () => {
    assert.throws(() => staticClaims({ n: { cidrs: ["10.0.0.0/33"] } }), /claims for n: cidrs/);
    assert.throws(() => verifyAgentClaims({ hosts: ["a b"] }), /hosts: not a host/);
    assert.throws(
      () => verifyAgentClaims({ defaultRoute: "yes" as unknown as boolean }),
      /defaultRoute must be a boolean/,
    );
  });
});
