/** Shared broker services: session registry, router, retained and will messages. */
export * from "./broker.ts";
export * from "./retained.ts";
export * from "./scheduler.ts";
