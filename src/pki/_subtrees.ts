/**
 * Name-constraint subtree tests for DNS names and IP addresses.
 *
 * @module
 */

/** dNSName name-constraint test: `base` matches `name` itself and its subdomains. */
export function dnsInSubtree(name: string, base: string): boolean {
  if (base === "") return true;
  const n = name.startsWith("*.") ? name.slice(2) : name;
  return n === base || n.endsWith(`.${base}`);
}

/** iPAddress name-constraint test: `constraint` is address||mask (8 or 32 bytes). */
export function ipInSubtree(ip: Uint8Array, constraint: Uint8Array): boolean {
  if (constraint.length !== ip.length * 2) return false;
  for (let i = 0; i < ip.length; i++) {
    const mask = constraint[ip.length + i];
    if ((ip[i] & mask) !== (constraint[i] & mask)) return false;
  }
  return true;
}

/** A valid iPAddress constraint has 8 or 32 bytes and a contiguous mask. */
export function validIpConstraint(constraint: Uint8Array): boolean {
  if (constraint.length !== 8 && constraint.length !== 32) return false;
  const half = constraint.length / 2;
  let zeros = false;
  for (let i = half; i < constraint.length; i++) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = (constraint[i] >> bit) & 1;
      if (set && zeros) return false;
      if (!set) zeros = true;
    }
  }
  return true;
}
