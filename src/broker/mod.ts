/** Shared broker services: session registry, router, retained and will messages, persistence. */
export { Broker } from "./broker.ts";
export * from "./clock.ts";
export * from "./types.ts";
export type { SessionEntry } from "./registry.ts";
export { RetainedService } from "./retained.ts";
export { type RouteChange, Router } from "./router.ts";
export { willMessage } from "./wills.ts";
export type { BrokerState, SessionSnapshot } from "./snapshot.ts";
