/// <reference lib="dom" />
/**
 * The cluster as this node sees it (/api/v1/cluster every 2 s): whether it can use the cluster log, the
 * nodes it hears from, and the log's counters; on a single node, just that.
 */
import { useEffect, useState } from "preact/hooks";
import { call } from "./api.ts";
import { REFRESH_SECONDS } from "./overview.tsx";

interface ClusterNode {
  nodeId: string;
  run: number;
  self: boolean;
  alive: boolean;
  lastHeardMsAgo: number;
}

interface ClusterStatus {
  enabled: boolean;
  nodeId: string | null;
  up: boolean;
  detail: string;
  nodes: ClusterNode[];
  log: Record<string, number> | null;
}

/** The log's counters in the order an operator reads them, with what each means. */
const COUNTERS: [key: string, label: string][] = [
  ["entriesAppended", "Entries appended"],
  ["appendsFailed", "Appends failed"],
  ["messagesSent", "Messages sent to RocketMQ"],
  ["sendFailures", "Send failures"],
  ["pendingBytes", "Bytes waiting to be sent"],
  ["entriesApplied", "Entries applied"],
  ["resendsDropped", "Resent copies dropped"],
];

function heard(node: ClusterNode): string {
  if (node.self) return "this node";
  return node.lastHeardMsAgo < 1000 ? "just now" : `${Math.round(node.lastHeardMsAgo / 1000)} s ago`;
}

export function ClusterPage(_: { canWrite: boolean }) {
  const [status, setStatus] = useState<ClusterStatus | undefined>();
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    const load = () =>
      call<ClusterStatus>("GET", "/cluster").then(
        (next) => live && (setStatus(next), setError("")),
        (failure) => live && setError(String(failure.message ?? failure)),
      );
    void load();
    const timer = setInterval(load, REFRESH_SECONDS * 1000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, []);
  if (!status) return error ? <p class="error" role="alert">{error}</p> : <p class="muted">…</p>;
  if (!status.enabled) {
    return (
      <>
        <h2>Cluster</h2>
        <p id="cluster-single">This broker runs as a single node (cluster.enabled = false).</p>
      </>
    );
  }
  return (
    <>
      <h2>
        Cluster <span class="muted">{status.nodeId}</span>
      </h2>
      {error && <p class="error" role="alert">{error}</p>}
      <p id="cluster-log-state" data-up={String(status.up)} class={status.up ? "" : "error"}>
        Cluster log: {status.up ? "up" : "down"} <span class="muted">({status.detail})</span>
      </p>
      <table id="cluster-nodes">
        <thead>
          <tr>
            <th>Node</th>
            <th>State</th>
            <th>Last heard</th>
            <th>Process started</th>
          </tr>
        </thead>
        <tbody>
          {status.nodes.map((node) => (
            <tr key={node.nodeId} data-key={node.nodeId} data-alive={String(node.alive)}>
              <td>{node.nodeId}</td>
              <td class={node.alive ? "" : "error"}>{node.alive ? "alive" : "declared gone"}</td>
              <td>{heard(node)}</td>
              <td>{new Date(node.run).toISOString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {status.log && (
        <div class="figures" id="cluster-log">
          {COUNTERS.map(([key, label]) => (
            <div class="card figure" key={key}>
              <span class="muted">{label}</span>
              <strong id={`cluster-${key}`}>{status.log![key]}</strong>
            </div>
          ))}
        </div>
      )}
    </>
  );
}
