/**
 * The idle-connection floor for `deno task bench`: a bare `Deno.listen` server that answers a CONNECT with
 * a CONNACK and then only keeps one read pending per socket, as mqtt-proxy does. What it costs per
 * connection is Deno's own share; what mqtt-proxy costs above it is the broker's. Run as a process by the
 * benchmark; scripts/bench/idle_heap.ts starts it in its own process with {@link startFloor}.
 *
 * The process reclaims memory as the broker does (src/observe/memory_reclaimer.ts: it collects once quiet
 * after its heap grew, and trims the allocator), so that the benchmark compares like with like after the
 * connections have been held a while.
 *
 * Usage: deno run --allow-net=127.0.0.1 --allow-ffi idle_floor.ts --port N --read broker|own-512
 *   broker   the broker's read strategy: a small view of a shared slab (src/connection/buffer_pool.ts)
 *   own-512  a 512-byte buffer of its own per socket (the broker's strategy before this round)
 */
import { BufferPool } from "../../src/connection/buffer_pool.ts";
import { createLogger } from "../../src/observe/log.ts";
import { MemoryReclaimer } from "../../src/observe/memory_reclaimer.ts";

export type ReadStrategy = "broker" | "own-512";

/** A running floor server: how many sockets it holds, and how to stop it. */
export interface FloorServer {
  readonly openConnections: number;
  /** Connections accepted since start. */
  readonly accepted: number;
  stop(): Promise<void>;
}

const CONNACK = new Uint8Array([0x20, 2, 0, 0]);

/** Listens on 127.0.0.1:`port` and holds every socket with one pending read until the peer goes. */
export function startFloor(port: number, strategy: ReadStrategy = "broker"): FloorServer {
  const pool = new BufferPool(64 * 1024, 256);
  let open = 0;
  let accepted = 0;
  const hold = async (conn: Deno.TcpConn): Promise<void> => {
    conn.setNoDelay(true);
    open++;
    accepted++;
    const own = strategy === "own-512";
    let buffer = own ? new Uint8Array(512) : pool.takeSmall();
    let answered = false;
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        // Whatever arrives first is taken for the CONNECT; the generator sends nothing else.
        if (!answered) {
          answered = true;
          await conn.write(CONNACK);
        }
      }
    } catch {
      // reset by the peer: nothing to report
    } finally {
      open--;
      if (!own) pool.giveSmall(buffer as Uint8Array<ArrayBuffer>);
      buffer = new Uint8Array(0);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const accepting = (async () => {
    for await (const conn of listener) void hold(conn);
  })().catch(() => {});
  return {
    get openConnections() {
      return open;
    },
    get accepted() {
      return accepted;
    },
    async stop() {
      listener.close();
      await accepting;
    },
  };
}

if (import.meta.main) {
  const option = (name: string): string | undefined => {
    const index = Deno.args.indexOf(name);
    return index >= 0 ? Deno.args[index + 1] : undefined;
  };
  const port = Number(option("--port"));
  const strategy = option("--read") ?? "broker";
  if (
    !Number.isInteger(port) || port <= 0 || port > 65535 || (strategy !== "broker" && strategy !== "own-512")
  ) {
    throw new Error("usage: idle_floor.ts --port <1-65535> --read broker|own-512");
  }
  // The benchmark stops the floor between runs: exit at once.
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  const floor = startFloor(port, strategy);
  // Its activity is its connects, as an idle broker's is.
  const reclaimer = new MemoryReclaimer(
    createLogger({ level: "warn" }),
    () => floor.accepted,
    performance.now(),
  );
  setInterval(
    () => reclaimer.sampled(Deno.memoryUsage().heapUsed + Deno.memoryUsage().external, performance.now()),
    250,
  );
}
