/** Observability: structured JSON-line logging and the $SYS tree. */
export { createLogger, logsAt, rateLimited } from "./log.ts";
export { MemoryReclaimer } from "./memory_reclaimer.ts";
export type { Logger, LoggerOptions, LogLevel } from "./log.ts";
export { startSysPublisher, type SysPublisherOptions, type SysSample } from "./sys.ts";
export {
  Counter,
  createBrokerMetrics,
  Gauge,
  Histogram,
  parseExposition,
  PROMETHEUS_CONTENT_TYPE,
  Registry,
  TrafficMetrics,
} from "./metrics.ts";
export type { BrokerMetricSources, DropTotals, Sample } from "./metrics.ts";
export { healthHandler, type HealthSources, type HttpApp, httpHandler } from "./http.ts";
