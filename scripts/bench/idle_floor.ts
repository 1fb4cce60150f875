/**
 * The idle-connection floor for `deno task bench`: a bare `Deno.listen` server that answers a CONNECT with
 * a CONNACK and then only keeps one read pending per socket, as mqtt-proxy does. What it costs per
 * connection is Deno's own share; what mqtt-proxy costs above it is the broker's.
 *
 * Usage: deno run --allow-net=127.0.0.1 idle_floor.ts --port N --read broker|own-512
 *   broker   the broker's read strategy: a small view of a shared slab (src/connection/buffer_pool.ts)
 *   own-512  a 512-byte buffer of its own per socket (the broker's strategy before this round)
 */
import { BufferPool } from "../../src/connection/buffer_pool.ts";

function option(name: string): string | undefined {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Deno.args[index + 1] : undefined;
}

const port = Number(option("--port"));
const strategy = option("--read") ?? "broker";
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !["broker", "own-512"].includes(strategy)) {
  throw new Error("usage: idle_floor.ts --port <1-65535> --read broker|own-512");
}
const pool = new BufferPool(64 * 1024, 256);
const CONNACK = new Uint8Array([0x20, 2, 0, 0]);

async function hold(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
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
    if (!own) pool.giveSmall(buffer as Uint8Array<ArrayBuffer>);
    buffer = new Uint8Array(0);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

// The benchmark stops the floor between runs: exit at once.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
const listener = Deno.listen({ hostname: "127.0.0.1", port });
for await (const conn of listener) void hold(conn);
