import * as net from "node:net";
import { SshConnection } from "../src/ssh/mod.ts";
import { startSshd } from "../tests/_harness/sshd.ts";

const s = await startSshd();
const mode = process.argv[2] ?? "up";
const cipher = process.argv[3] ?? "aes128-gcm@openssh.com";
const bytes = 128 * 1024 * 1024;
let count = 0;
let done!: () => void;
const p = new Promise<void>((r) => (done = r));
const chunk = Buffer.alloc(65536, 0x61);
const srv = net.createServer((sock) => {
  if (mode === "up")
    sock.on("data", (d) => {
      count += d.length;
      if (count >= bytes) done();
    });
  else {
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += 65536;
        if (!sock.write(chunk)) {
          sock.once("drain", pump);
          return;
        }
      }
      sock.end();
    };
    pump();
  }
});
await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
const port = (srv.address() as net.AddressInfo).port;
const conn = await SshConnection.connect({
  host: s.host,
  port: s.port,
  username: s.user,
  privateKey: s.clientKeys.ed25519,
  hostKeys: { knownHosts: s.knownHosts() },
  algorithms: { ciphers: [cipher] },
});
const ch = await conn.openDirectTcpip({ host: "127.0.0.1", port });
const t0 = performance.now();
if (mode === "up") {
  const w = ch.writable.getWriter();
  const c = new Uint8Array(65536).fill(0x61);
  for (let sent = 0; sent < bytes; sent += 65536) {
    await w.ready;
    w.write(c).catch(() => {});
  }
  await p;
} else {
  const r = ch.readable.getReader();
  let n = 0;
  for (;;) {
    const x = await r.read();
    if (x.done) break;
    n += x.value.byteLength;
  }
}
console.log(mode, cipher, (bytes / 1e6 / ((performance.now() - t0) / 1000)).toFixed(0), "MB/s");
ch.abort();
conn.close();
srv.close();
await s.stop();
