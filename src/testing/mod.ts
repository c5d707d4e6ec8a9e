export * from "./conformance.ts";
