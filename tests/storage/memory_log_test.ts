import {
  type ClusterLogFactory,
  runClusterLogConformance,
  runClusterLogOutageConformance,
} from "../../src/storage/cluster_log_conformance.ts";
import { MemoryLog, MemoryLogService } from "../../src/storage/memory/memory_log.ts";

const service = new MemoryLogService();
const appendTimeoutMs = 500;
const factory: ClusterLogFactory = {
  open: (nodeId) => new MemoryLog(service, { nodeId, appendTimeoutMs, maxBatchEntries: 64 }),
  outage: {
    begin: () => Promise.resolve(service.setReachable(false)),
    end: () => Promise.resolve(service.setReachable(true)),
  },
  appendTimeoutMs,
};
runClusterLogConformance("memory", factory);
runClusterLogOutageConformance("memory", factory);
