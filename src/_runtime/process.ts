/**
 * The process edge for the CLI: arguments, environment, exit, output and
 * shutdown signals, in both runtimes.
 *
 * @module
 */

import process from "node:process";

/** Command-line arguments after the script. */
export function commandLineArgs(): string[] {
  return process.argv.slice(2);
}

/** Write to standard error (a line is not added). */
export function writeStderr(text: string): void {
  process.stderr.write(text);
}

/** Write to standard output (a line is not added). */
export function writeStdout(text: string): void {
  process.stdout.write(text);
}

/** Set the exit code the process ends with. */
export function setExitCode(code: number): void {
  process.exitCode = code;
}

/** End the process now with `code`. */
export function exitNow(code: number): never {
  process.exit(code);
}

/** This process's id. */
export function processId(): number {
  return process.pid;
}

/**
 * Call `handler` with the signal's name on SIGINT or SIGTERM. Returns a
 * function that removes the handlers.
 */
export function onShutdownSignal(handler: (signal: "SIGINT" | "SIGTERM") => void): () => void {
  const int = (): void => handler("SIGINT");
  const term = (): void => handler("SIGTERM");
  process.on("SIGINT", int);
  process.on("SIGTERM", term);
  return () => {
    process.off("SIGINT", int);
    process.off("SIGTERM", term);
  };
}
