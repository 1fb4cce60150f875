/**
 * The idle case's third floor for `deno task bench`: the same server as idle_floor.ts (a CONNACK for a
 * CONNECT, then the socket held), but its socket calls are libc's, made through FFI from one epoll loop, as
 * Mosquitto makes them, instead of Deno's ops (a resource and a tokio stream per socket, a promise per
 * accept and per pending read). What it costs per connect and per held connection is what JavaScript on
 * V8 costs without Deno's socket layer: deno-floor minus this is that layer's share.
 *
 * Linux x86-64 only (the epoll_event layout). Usage:
 *   deno run --allow-ffi syscall_floor.ts --port N
 */

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const EPOLLIN = 0x1;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const EPOLL_CTL_ADD = 1;
/** struct epoll_event is packed on x86-64: a u32 of flags, then the 64-bit data (the descriptor here). */
const EVENT_BYTES = 12;
const EVENTS_PER_WAIT = 256;
const CONNECT_FIRST_BYTE = 0x10;
const CONNACK = new Uint8Array([0x20, 2, 0, 0]);

if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
  throw new Error(
    `syscall_floor.ts runs on Linux x86-64 only (the epoll_event layout), not ${Deno.build.target}`,
  );
}

const libc = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // Blocking, on a thread of the runtime's pool: only when the loop below finds nothing to do.
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  epoll_poll: { name: "epoll_wait", parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
});
const sys = libc.symbols;

function option(name: string): string | undefined {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Deno.args[index + 1] : undefined;
}

const port = Number(option("--port"));
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  throw new Error("usage: syscall_floor.ts --port <1-65535>");
}
// The benchmark stops the floor between runs: exit at once.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));

const yes = new Int32Array([1]);
const listener = sys.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
if (listener < 0) throw new Error("socket() failed");
sys.setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, yes, 4);
const address = new Uint8Array(16); // struct sockaddr_in: family, port (network order), 127.0.0.1
const addressView = new DataView(address.buffer);
addressView.setUint16(0, AF_INET, true);
addressView.setUint16(2, port, false);
address.set([127, 0, 0, 1], 4);
if (sys.bind(listener, address, address.byteLength) !== 0) throw new Error(`bind(127.0.0.1:${port}) failed`);
if (sys.listen(listener, 511) !== 0) throw new Error("listen() failed");

const epoll = sys.epoll_create1(0);
const event = new Uint8Array(EVENT_BYTES);
const eventView = new DataView(event.buffer);
function watch(fd: number): void {
  eventView.setUint32(0, EPOLLIN, true);
  eventView.setUint32(4, fd, true);
  sys.epoll_ctl(epoll, EPOLL_CTL_ADD, fd, event);
}
watch(listener);

const events = new Uint8Array(EVENT_BYTES * EVENTS_PER_WAIT);
const eventsView = new DataView(events.buffer);
const received = new Uint8Array(4096);
const RECEIVED_BYTES = BigInt(received.length);
const CONNACK_BYTES = BigInt(CONNACK.length);

function handle(count: number): void {
  for (let i = 0; i < count; i++) {
    const flags = eventsView.getUint32(i * EVENT_BYTES, true);
    const fd = eventsView.getUint32(i * EVENT_BYTES + 4, true);
    if (fd === listener) {
      // Accepts what is queued; a refusal (EMFILE, or nothing left) waits for the next readiness.
      for (;;) {
        const socket = sys.accept4(listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (socket < 0) break;
        sys.setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, yes, 4);
        watch(socket);
      }
      continue;
    }
    const read = (flags & (EPOLLERR | EPOLLHUP)) !== 0
      ? 0
      : Number(sys.recv(fd, received, RECEIVED_BYTES, 0));
    if (read > 0 && received[0] === CONNECT_FIRST_BYTE) sys.send(fd, CONNACK, CONNACK_BYTES, 0);
    else if (read === 0) sys.close(fd);
    // read < 0: EAGAIN, nothing to do until the next readiness
  }
}

// Ready events are taken without leaving the JavaScript thread while there are any; the loop waits on a
// pool thread only when there are none, as a broker's event loop would.
for (;;) {
  let count = sys.epoll_poll(epoll, events, EVENTS_PER_WAIT, 0);
  if (count === 0) count = await sys.epoll_wait(epoll, events, EVENTS_PER_WAIT, -1);
  if (count > 0) handle(count);
}
