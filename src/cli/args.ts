/**
 * A small, strict command-line flag parser: `--name value`, `--name=value`,
 * repeatable list flags, boolean flags. Unknown flags and missing values are
 * usage errors.
 *
 * @module
 */

/** A mistake in the command line (exit code 2). */
export class UsageError extends Error {}

/** What a flag takes. */
export interface FlagSpec {
  readonly kind: "string" | "list" | "boolean";
  /** One line for `--help`. */
  readonly help: string;
  /** Shown in `--help`. */
  readonly placeholder?: string;
  readonly default?: string;
}

/** Parsed flags: strings, lists and booleans by name. */
export interface ParsedFlags {
  readonly strings: ReadonlyMap<string, string>;
  readonly lists: ReadonlyMap<string, readonly string[]>;
  readonly booleans: ReadonlySet<string>;
  readonly help: boolean;
}

/** Parse `argv` under `specs`; throws {@link UsageError}. */
export function parseFlags(
  argv: readonly string[],
  specs: Readonly<Record<string, FlagSpec>>,
): ParsedFlags {
  const strings = new Map<string, string>();
  const lists = new Map<string, string[]>();
  const booleans = new Set<string>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const spec = specs[name];
    if (!spec) throw new UsageError(`unknown flag --${name}`);
    if (spec.kind === "boolean") {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      booleans.add(name);
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined || value === "" || (eq < 0 && value.startsWith("--"))) {
      throw new UsageError(`--${name} needs a value`);
    }
    if (spec.kind === "list") {
      const l = lists.get(name) ?? [];
      l.push(...value.split(",").filter((v) => v !== ""));
      lists.set(name, l);
    } else {
      if (strings.has(name)) throw new UsageError(`--${name} given twice`);
      strings.set(name, value);
    }
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.kind === "string" && spec.default !== undefined && !strings.has(name)) {
      strings.set(name, spec.default);
    }
  }
  return { strings, lists, booleans, help };
}

/** The `--help` text of a flag set. */
export function flagHelp(specs: Readonly<Record<string, FlagSpec>>): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const left = `  --${name}${s.kind === "boolean" ? "" : ` ${s.placeholder ?? "VALUE"}`}`;
    const def = s.default !== undefined ? ` (default ${s.default})` : "";
    const rep = s.kind === "list" ? " (repeatable, or comma-separated)" : "";
    return `${left.padEnd(34)} ${s.help}${def}${rep}`;
  });
  return rows.join("\n");
}

/** Parse `host:port` (IPv6 in brackets); throws {@link UsageError} naming the flag. */
export function parseHostPort(flag: string, text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new UsageError(`--${flag} must be host:port, got ${JSON.stringify(text)}`);
  }
  return { host: m[1] ?? m[2], port };
}

/** Parse a positive integer flag; throws {@link UsageError}. */
export function parseCount(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--${flag} must be a positive integer, got ${JSON.stringify(text)}`);
  }
  return n;
}
