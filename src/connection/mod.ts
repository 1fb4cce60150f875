/** The actor shell per socket and the manager that owns them. */
export * from "./connection.ts";
export * from "./server.ts";
export * from "./buffer_pool.ts";
export { clientPermissions, reservedTopicReason, type TakeoverPolicy, willRefusal } from "./access.ts";
