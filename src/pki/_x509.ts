/**
 * The one place that loads `@peculiar/x509`, after the Reflect polyfill it needs.
 *
 * @module
 */

import "reflect-metadata";
import * as x509 from "@peculiar/x509";

export { x509 };
