/** The cluster: broker nodes replicating their state through one shared, ordered log. */
export { ClusterNode, type ClusterNodeOptions, type ClusterStatus, ClusterUnavailableError } from "./node.ts";
export { LogClock } from "./log_clock.ts";
export { type ClusterEvent, decodeEvent, encodeEvent } from "./events.ts";
