/**
 * Aedes on a node:net server, the Node.js broker in `deno task bench`.
 *
 * Usage: deno run --allow-net --allow-read --allow-env --allow-sys aedes_server.ts --port N
 * Prints "AEDES_VERSION <semver>" then "LISTENING <port>" on stdout when ready; with --version it prints
 * only the version line and exits.
 */
import { Aedes } from "npm:aedes@^1";
import { createServer } from "node:net";

function parsePort(args: string[]): number {
  const index = args.indexOf("--port");
  const port = index >= 0 ? Number(args[index + 1]) : NaN;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error("usage: aedes_server.ts --port <1-65535>");
  }
  return port;
}

/** The package does not export its package.json, so find it next to the entry module. */
async function aedesVersion(): Promise<string> {
  let dir = new URL(".", import.meta.resolve("npm:aedes@^1"));
  for (let depth = 0; depth < 4; depth++) {
    try {
      const manifest = JSON.parse(await Deno.readTextFile(new URL("package.json", dir)));
      if (manifest.name === "aedes") return String(manifest.version);
    } catch {
      // not this directory; keep walking up
    }
    dir = new URL("..", dir);
  }
  return "unknown";
}

const version = await aedesVersion();
const encoder = new TextEncoder();
if (Deno.args.includes("--version")) {
  Deno.stdout.writeSync(encoder.encode(`AEDES_VERSION ${version}\n`));
  Deno.exit(0);
}
const port = parsePort(Deno.args);
const broker = await Aedes.createBroker();
// Nagle would add up to a delayed-ACK timeout to small PUBLISHes; every broker
// in the benchmark runs with TCP_NODELAY so latency compares like for like.
const server = createServer({ noDelay: true }, broker.handle);

// The benchmark stops the broker between runs with nothing left to deliver: exit at once.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
Deno.addSignalListener("SIGINT", () => Deno.exit(0));

server.listen(port, "127.0.0.1", () => {
  Deno.stdout.writeSync(encoder.encode(`AEDES_VERSION ${version}\nLISTENING ${port}\n`));
});
