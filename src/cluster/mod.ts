/** The cluster: broker nodes replicating their state through one shared, ordered log. */
export { ClusterNode, type ClusterNodeOptions, ClusterUnavailableError, LogClock } from "./node.ts";
export { type ClusterEvent, decodeEvent, encodeEvent } from "./events.ts";
