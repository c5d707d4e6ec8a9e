import { readFileSync } from "node:fs";

/** Largest TCP send plus receive buffer the kernel may autotune to, in bytes. */
export function kernelTcpBufferMax(): number {
  const max = (f: string): number => {
    try {
      const parts = readFileSync(f, "utf8").trim().split(/\s+/);
      return Number(parts[2]);
    } catch {
      return 8 * 1024 * 1024;
    }
  };
  return max("/proc/sys/net/ipv4/tcp_rmem") + max("/proc/sys/net/ipv4/tcp_wmem");
}
