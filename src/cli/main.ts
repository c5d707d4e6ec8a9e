#!/usr/bin/env node
/**
 * Entry point of the `spokewire-konnectivity` command (see `konnectivity.ts`):
 * `node --import tsx src/cli/main.ts server ...` or `deno run -A src/cli/main.ts agent ...`.
 *
 * @module
 */

import { commandLineArgs, exitNow } from "../_runtime/process.ts";
import { main } from "./konnectivity.ts";

// After a clean shutdown, nothing left open may keep the process alive.
main(commandLineArgs()).then((code) => exitNow(code));
