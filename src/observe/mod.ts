/** Observability: structured JSON-line logging. */
export { createLogger } from "./log.ts";
export type { Logger, LoggerOptions, LogLevel } from "./log.ts";
