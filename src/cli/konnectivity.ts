/**
 * The `spokewire-konnectivity` command: run a Konnectivity server (agent listener plus an
 * HTTP CONNECT frontend) or an agent.
 *
 * ```sh
 * node --import tsx src/cli/main.ts server --cert s.crt --key s.key --ca ca.crt --connect-uds /run/k.sock
 * deno run -A src/cli/main.ts agent --server 10.0.0.1:8091 --ca ca.crt --cert a.crt --key a.key --allow '*'
 * node --import tsx src/cli/main.ts token --signing-key token.key --node node-1 > node-1.token
 * ```
 *
 * Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 1 on a runtime
 * failure (cannot listen, cannot read a file), 2 on a usage error.
 *
 * @module
 */

import { readFileText } from "../_runtime/fs.ts";
import {
  exitNow,
  onShutdownSignal,
  setExitCode,
  writeStderr,
  writeStdout,
} from "../_runtime/process.ts";
import type { Listener } from "../channel/types.ts";
import { KonnectivityAgent } from "../konnectivity/agent.ts";
import {
  type AgentClaimPolicy,
  type AgentClaims,
  staticClaims,
} from "../konnectivity/agent_claims.ts";
import type { AgentAllowList } from "../konnectivity/agent_routes.ts";
import { type ConnectFrontend, serveConnectFrontend } from "../konnectivity/connect_frontend.ts";
import {
  type AgentSelectionStrategy,
  type AgentTokenVerifier,
  KonnectivityServer,
  serviceTokenAgents,
} from "../konnectivity/server.ts";
import { createServiceTokenVerifier, issueServiceToken } from "../pki/service_token.ts";
import { listenTcp } from "../tcp/tcp.ts";
import { listenTls } from "../tls/listener.ts";
import {
  type FlagSpec,
  flagHelp,
  type ParsedFlags,
  parseCount,
  parseFlags,
  parseHostPort,
  UsageError,
} from "./args.ts";

/** Issuer of tokens when none is named (`token --issuer`, `server --token-issuer`). */
const DEFAULT_TOKEN_ISSUER = "spokewire";
/** Audience of tokens when none is named, as Kubernetes projects konnectivity-agent tokens. */
const DEFAULT_TOKEN_AUDIENCE = "system:konnectivity-server";

const SERVER_FLAGS: Readonly<Record<string, FlagSpec>> = Object.freeze({
  "agent-bind": {
    kind: "string",
    help: "where agents connect (wss://, mutual TLS)",
    placeholder: "HOST:PORT",
    default: "127.0.0.1:8091",
  },
  cert: { kind: "string", help: "server certificate (PEM) shown to agents", placeholder: "FILE" },
  key: { kind: "string", help: "private key of --cert (PEM)", placeholder: "FILE" },
  ca: { kind: "string", help: "CA that agent client certificates chain to", placeholder: "FILE" },
  "token-file": {
    kind: "string",
    help: "agent tokens, one '<agent-id> <token>' per line (re-read per connect); enables token agents",
    placeholder: "FILE",
  },
  "token-key": {
    kind: "list",
    help: "keys that verify agent service tokens (PEM public keys, certificates or private keys; several for rotation; re-read per connect); enables token agents",
    placeholder: "FILE",
  },
  "token-issuer": {
    kind: "list",
    help: "accepted token issuer(s)",
    placeholder: "ISS",
    default: DEFAULT_TOKEN_ISSUER,
  },
  "token-audience": {
    kind: "string",
    help: "audience a token must carry",
    placeholder: "AUD",
    default: DEFAULT_TOKEN_AUDIENCE,
  },
  "connect-bind": {
    kind: "string",
    help: "HTTP CONNECT frontend on TCP with mutual TLS",
    placeholder: "HOST:PORT",
  },
  "connect-uds": {
    kind: "string",
    help: "HTTP CONNECT frontend on a Unix socket (access by file permissions)",
    placeholder: "PATH",
  },
  "connect-cert": {
    kind: "string",
    help: "frontend certificate (default --cert)",
    placeholder: "FILE",
  },
  "connect-key": { kind: "string", help: "frontend key (default --key)", placeholder: "FILE" },
  "connect-ca": {
    kind: "string",
    help: "CA that frontend clients chain to (default --ca)",
    placeholder: "FILE",
  },
  "connect-uds-caller": {
    kind: "string",
    help: "caller named to agents for dials through --connect-uds (default anonymous; --connect-bind names the client certificate)",
    placeholder: "NAME",
  },
  strategies: {
    kind: "list",
    help: "agent selection order: destHost, defaultRoute, default",
    placeholder: "LIST",
  },
  "agent-claims": {
    kind: "string",
    help: 'what agents may announce beyond their certificate: JSON {"node-1": {"hosts": [...], "cidrs": [...], "defaultRoute": true}}',
    placeholder: "FILE",
  },
  "max-agents": {
    kind: "string",
    help: "agents registered at once (each idle agent costs about 90-120 KiB)",
    placeholder: "N",
    default: "10000",
  },
});

const AGENT_FLAGS: Readonly<Record<string, FlagSpec>> = Object.freeze({
  server: {
    kind: "string",
    help: "the server's agent listener (required)",
    placeholder: "HOST:PORT",
  },
  "server-name": {
    kind: "string",
    help: "name the server certificate must carry (default the host of --server)",
    placeholder: "NAME",
  },
  ca: { kind: "string", help: "CA that verifies the server (required)", placeholder: "FILE" },
  cert: { kind: "string", help: "agent client certificate (PEM)", placeholder: "FILE" },
  key: { kind: "string", help: "private key of --cert (PEM)", placeholder: "FILE" },
  "token-file": {
    kind: "string",
    help: "bearer token file, re-read at each connect (needs --agent-id)",
    placeholder: "FILE",
  },
  "agent-id": {
    kind: "string",
    help: "agent id (must match the certificate if one is used)",
    placeholder: "ID",
  },
  allow: {
    kind: "list",
    help: "destinations the agent dials for any caller: host[:port], *, *.suffix, CIDR ('*' = all; this or --allow-for is required)",
    placeholder: "PATTERN",
  },
  "allow-for": {
    kind: "list",
    help: "destinations for one caller (the identity the server dials for, e.g. a CONNECT client's certificate name): CALLER=PATTERN; that caller gets these instead of --allow",
    placeholder: "CALLER=PATTERN",
  },
  host: { kind: "list", help: "host announced for destHost routing", placeholder: "HOST" },
  cidr: { kind: "list", help: "CIDR announced for destHost routing", placeholder: "CIDR" },
  "default-route": { kind: "boolean", help: "take dials no other agent serves" },
});

const TOKEN_FLAGS: Readonly<Record<string, FlagSpec>> = Object.freeze({
  "signing-key": {
    kind: "string",
    help: "private key that signs (PKCS#8 PEM, ECDSA P-256 or Ed25519) (required)",
    placeholder: "FILE",
  },
  node: {
    kind: "string",
    help: "node (agent id) the token is for (required)",
    placeholder: "NAME",
  },
  issuer: { kind: "string", help: "iss", placeholder: "ISS", default: DEFAULT_TOKEN_ISSUER },
  audience: { kind: "list", help: "aud", placeholder: "AUD", default: DEFAULT_TOKEN_AUDIENCE },
  ttl: {
    kind: "string",
    help: "lifetime: seconds, or with a unit s, m, h",
    placeholder: "DURATION",
    default: "1h",
  },
});

const USAGE = `usage: spokewire-konnectivity <server|agent|token> [flags]

Konnectivity over WebSocket. Subcommands:
  server   accept agents over wss:// and serve HTTP CONNECT through them
  agent    connect out to a server and dial TCP targets for it
  token    print a signed service token for an agent (to stdout)

Run 'spokewire-konnectivity <subcommand> --help' for its flags.
Exit codes: 0 clean shutdown, 1 runtime failure, 2 usage error.
`;

function need(flags: ParsedFlags, name: string): string {
  const v = flags.strings.get(name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

/** Run until a shutdown signal, then `stop()`. A second signal exits at once. */
function runUntilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const off = onShutdownSignal((sig) => {
      if (stopping) {
        writeStderr(`${sig} again: exiting now\n`);
        exitNow(130);
      }
      stopping = true;
      writeStderr(`${sig}: shutting down\n`);
      stop().then(
        () => {
          off();
          resolve();
        },
        (err: unknown) => {
          writeStderr(`shutdown failed: ${(err as Error).message}\n`);
          setExitCode(1);
          off();
          resolve();
        },
      );
    });
  });
}

/**
 * The CONNECT frontends' kernel and accept backlogs: a kube-apiserver opening streams
 * during a rollout sends bursts of a thousand and more (capped by the kernel's somaxconn).
 */
const FRONTEND_LISTEN_BACKLOG = 4096;

/** Every CONNECT refusal on stderr, with its status (the reason names the target and agent). */
function logRefusal(status: number, reason: string): void {
  writeStderr(status === 0 ? `connect ${reason}\n` : `connect refused (${status}): ${reason}\n`);
}

async function runServer(argv: readonly string[]): Promise<void> {
  const flags = parseFlags(argv, SERVER_FLAGS);
  if (flags.help) {
    writeStdout(`usage: spokewire-konnectivity server [flags]\n\n${flagHelp(SERVER_FLAGS)}\n`);
    return;
  }
  const bind = parseHostPort("agent-bind", need(flags, "agent-bind"));
  const certPath = need(flags, "cert");
  const keyPath = need(flags, "key");
  const caPath = need(flags, "ca");
  const maxAgents = parseCount("max-agents", need(flags, "max-agents"));
  const strategies = (flags.lists.get("strategies") ?? []) as AgentSelectionStrategy[];
  for (const s of strategies) {
    if (s !== "destHost" && s !== "defaultRoute" && s !== "default") {
      throw new UsageError(`--strategies: unknown strategy ${JSON.stringify(s)}`);
    }
  }
  const connectBind = flags.strings.get("connect-bind");
  const connectUds = flags.strings.get("connect-uds");
  const connectAddr = connectBind ? parseHostPort("connect-bind", connectBind) : undefined;
  const tokenFile = flags.strings.get("token-file");
  const tokenKeys = flags.lists.get("token-key") ?? [];
  if (tokenFile && tokenKeys.length > 0) {
    throw new UsageError("--token-file and --token-key: give one of them, not both");
  }
  const claimsFile = flags.strings.get("agent-claims");
  let claimPolicy: AgentClaimPolicy | undefined;
  if (claimsFile) {
    try {
      claimPolicy = staticClaims(
        JSON.parse(await readFileText(claimsFile)) as Record<string, AgentClaims>,
      );
    } catch (err) {
      throw new UsageError(`--agent-claims ${claimsFile}: ${(err as Error).message}`);
    }
  }

  const [cert, key, ca] = await Promise.all([
    readFileText(certPath),
    readFileText(keyPath),
    readFileText(caPath),
  ]);
  const agentToken = tokenFile
    ? async (id: string): Promise<string | undefined> => {
        const text = await readFileText(tokenFile);
        for (const line of text.split("\n")) {
          const [lineId, token] = line.trim().split(/\s+/);
          if (lineId === id && token) return token;
        }
        return undefined;
      }
    : undefined;
  const verifyAgentToken =
    tokenKeys.length > 0
      ? await tokenKeyVerifier(
          tokenKeys,
          flags.lists.get("token-issuer") ?? [DEFAULT_TOKEN_ISSUER],
          need(flags, "token-audience"),
        )
      : undefined;
  const server = await KonnectivityServer.listen({
    host: bind.host,
    port: bind.port,
    tls: { credentials: { cert, key, ca } },
    agentToken,
    verifyAgentToken,
    claimPolicy,
    strategies: strategies.length > 0 ? strategies : undefined,
    config: { maxAgents },
    logger: { info: (m) => writeStderr(`${m}\n`), warn: (m) => writeStderr(`warning: ${m}\n`) },
  });
  writeStdout(`agent listener on ${server.addr}\n`);
  const frontends: ConnectFrontend[] = [];
  try {
    if (connectAddr) {
      const [fc, fk, fca] = await Promise.all([
        readFileText(flags.strings.get("connect-cert") ?? certPath),
        readFileText(flags.strings.get("connect-key") ?? keyPath),
        readFileText(flags.strings.get("connect-ca") ?? caPath),
      ]);
      const l: Listener = await listenTls(connectAddr, {
        credentials: { cert: fc, key: fk, ca: fca },
        listenBacklog: FRONTEND_LISTEN_BACKLOG,
        backlog: FRONTEND_LISTEN_BACKLOG,
      });
      frontends.push(serveConnectFrontend(l, server, { onRefused: logRefusal }));
      writeStdout(`connect frontend on ${l.addr}\n`);
    }
    if (connectUds) {
      const l = await listenTcp(
        { path: connectUds },
        { listenBacklog: FRONTEND_LISTEN_BACKLOG, backlog: FRONTEND_LISTEN_BACKLOG },
      );
      const udsCaller = flags.strings.get("connect-uds-caller");
      frontends.push(
        serveConnectFrontend(l, server, {
          onRefused: logRefusal,
          ...(udsCaller ? { callerOf: () => udsCaller } : {}),
        }),
      );
      writeStdout(`connect frontend on unix:${connectUds}\n`);
    }
  } catch (err) {
    await Promise.all(frontends.map((f) => f.close()));
    await server.close();
    throw err;
  }
  await runUntilSignal(async () => {
    await Promise.all(frontends.map((f) => f.close()));
    await server.close();
  });
}

/**
 * Verifies agent tokens with the keys in `paths`, re-read at each connect (a
 * new verifier only when their text changed), so keys rotate without a restart.
 * The files must hold usable keys at start-up.
 */
async function tokenKeyVerifier(
  paths: readonly string[],
  issuer: readonly string[],
  audience: string,
): Promise<AgentTokenVerifier> {
  let current: { text: string; verify: AgentTokenVerifier } | undefined;
  const load = async (): Promise<AgentTokenVerifier> => {
    const texts = await Promise.all(paths.map((p) => readFileText(p)));
    const text = texts.join("\n");
    if (current?.text !== text) {
      const v = await createServiceTokenVerifier({ keys: texts, issuer, audience });
      current = { text, verify: serviceTokenAgents(v) };
    }
    return current.verify;
  };
  try {
    await load();
  } catch (err) {
    throw new UsageError(`--token-key: ${(err as Error).message}`);
  }
  return async (token, agentId) => (await load())(token, agentId);
}

/** `90`, `90s`, `15m`, `1h` as milliseconds. */
function parseDuration(flag: string, text: string): number {
  const m = /^(\d{1,9})([smh]?)$/.exec(text);
  if (!m) throw new UsageError(`--${flag}: expected seconds or a number with s, m or h: ${text}`);
  return Number(m[1]) * (m[2] === "h" ? 3_600_000 : m[2] === "m" ? 60_000 : 1000);
}

async function runToken(argv: readonly string[]): Promise<void> {
  const flags = parseFlags(argv, TOKEN_FLAGS);
  if (flags.help) {
    writeStdout(`usage: spokewire-konnectivity token [flags]\n\n${flagHelp(TOKEN_FLAGS)}\n`);
    return;
  }
  const keyText = await readFileText(need(flags, "signing-key"));
  let token: string;
  try {
    token = await issueServiceToken(keyText, {
      issuer: need(flags, "issuer"),
      audience: flags.lists.get("audience") ?? [DEFAULT_TOKEN_AUDIENCE],
      node: need(flags, "node"),
      lifetimeMs: parseDuration("ttl", need(flags, "ttl")),
    });
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
  writeStdout(`${token}\n`);
}

async function runAgent(argv: readonly string[]): Promise<void> {
  const flags = parseFlags(argv, AGENT_FLAGS);
  if (flags.help) {
    writeStdout(`usage: spokewire-konnectivity agent [flags]\n\n${flagHelp(AGENT_FLAGS)}\n`);
    return;
  }
  const target = parseHostPort("server", need(flags, "server"));
  if (target.port === 0) throw new UsageError("--server needs a port other than 0");
  const caPath = need(flags, "ca");
  const certPath = flags.strings.get("cert");
  const keyPath = flags.strings.get("key");
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  const tokenFile = flags.strings.get("token-file");
  const agentId = flags.strings.get("agent-id");
  if (tokenFile && !agentId) throw new UsageError("--token-file needs --agent-id");
  if (!tokenFile && !certPath) throw new UsageError("give --cert/--key or --token-file");
  const allowAll = flags.lists.get("allow") ?? [];
  const allowFor = flags.lists.get("allow-for") ?? [];
  if (allowAll.length === 0 && allowFor.length === 0) {
    throw new UsageError("--allow or --allow-for is required ('--allow *' allows all)");
  }
  let allow: AgentAllowList = allowAll;
  if (allowFor.length > 0) {
    const byCaller: Record<string, string[]> = allowAll.length > 0 ? { "*": [...allowAll] } : {};
    for (const entry of allowFor) {
      const eq = entry.lastIndexOf("=");
      if (eq <= 0 || eq === entry.length - 1) {
        throw new UsageError(`--allow-for: expected CALLER=PATTERN, got ${JSON.stringify(entry)}`);
      }
      const caller = entry.slice(0, eq);
      if (caller === "*") throw new UsageError("--allow-for: use --allow for every caller");
      byCaller[caller] = [...(byCaller[caller] ?? []), entry.slice(eq + 1)];
    }
    allow = byCaller;
  }
  const [ca, cert, key] = await Promise.all([
    readFileText(caPath),
    certPath ? readFileText(certPath) : undefined,
    keyPath ? readFileText(keyPath) : undefined,
  ]);
  let agent: KonnectivityAgent;
  try {
    agent = new KonnectivityAgent({
      server: { ...target, name: flags.strings.get("server-name") },
      credentials: cert && key ? { ca, cert, key } : { ca },
      agentId,
      token: tokenFile ? () => readFileText(tokenFile) : undefined,
      allow,
      identifiers: {
        hosts: flags.lists.get("host") ?? [],
        cidrs: flags.lists.get("cidr") ?? [],
        defaultRoute: flags.booleans.has("default-route"),
      },
      onDialRefused: (r) =>
        writeStderr(
          `dial refused: ${r.caller === undefined ? "an anonymous caller" : r.caller} may not reach ${r.address}\n`,
        ),
      onStateChange: (state, err) => {
        if (state === "connected")
          writeStdout(`agent connected to ${target.host}:${target.port}\n`);
        else if (state === "backoff")
          writeStderr(`agent disconnected: ${err?.message}; retrying\n`);
      },
    });
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
  agent.start();
  await runUntilSignal(() => agent.close());
}

/** Run the CLI with `argv` (without the program); resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === "server") await runServer(rest);
    else if (cmd === "agent") await runAgent(rest);
    else if (cmd === "token") await runToken(rest);
    else if (cmd === "--help" || cmd === "-h" || cmd === "help") writeStdout(USAGE);
    else
      throw new UsageError(cmd === undefined ? "missing subcommand" : `unknown subcommand ${cmd}`);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      writeStderr(`error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    writeStderr(`error: ${(err as Error).message}\n`);
    return 1;
  }
}
