/** Shared broker services: session registry, router, retained and will messages, persistence. */
export { Broker, empty } from "./broker.ts";
export { MemoryBudget } from "./memory_budget.ts";
export * from "./clock.ts";
export * from "./types.ts";
export type { SessionEntry } from "./session_entry.ts";
export { type RetainedEntry, type RetainedLimits, RetainedService } from "./retained.ts";
export { ownerUsername, sessionOwner } from "./owner.ts";
export { addressOf, type SessionOwner, type SessionQuotaLimits } from "./session_quota.ts";
export { type RouteChange, Router } from "./router.ts";
export { willMessage } from "./wills.ts";
export type { BrokerStatePart, SessionSnapshot } from "./snapshot.ts";
