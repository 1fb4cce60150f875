/**
 * TCP on libc's socket calls through FFI, from one epoll loop per process, as Mosquitto makes them: an
 * opt-in listener I/O (`listener.<name>.io = epoll`) for fleets of mostly idle clients. Deno's sockets
 * hold a resource, a tokio stream and an op promise per socket and per pending read; here a socket is a
 * descriptor and one small object, and an idle connection's pending read is a promise with nothing under
 * it (docs/benchmarks.md measures both).
 *
 * Sockets are nonblocking and registered once, edge-triggered: readiness is remembered on the socket and
 * spent by the read or write that finds EAGAIN, so a busy connection costs no epoll_ctl per read. While
 * events come, the loop polls on the JavaScript thread with a turn of the event loop between polls (so
 * timers, the store's worker and Deno's own sockets keep their share); with none, it waits on a thread of
 * the runtime's pool, and an eventfd wakes that wait when the last descriptor is gone.
 *
 * Linux x86-64 with glibc only (the packed epoll_event layout and `__errno_location`); elsewhere the
 * listener refuses to start with an error that says so.
 */
import type { ByteStream } from "./mod.ts";
import type { Accepted, Listener } from "./tcp.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SHUT_WR = 1;
const MSG_NOSIGNAL = 0x4000;
const EPOLL_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const EPOLLIN = 0x1;
const EPOLLOUT = 0x4;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const EPOLLRDHUP = 0x2000;
const EPOLLET = 0x80000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EINTR = 4;
const EAGAIN = 11;
const ENOMEM = 12;
const EACCES = 13;
const ENFILE = 23;
const EMFILE = 24;
const EPIPE = 32;
const EPROTO = 71;
const EADDRINUSE = 98;
const EADDRNOTAVAIL = 99;
const ECONNABORTED = 103;
const ECONNRESET = 104;
const ENOBUFS = 105;
const ETIMEDOUT = 110;

/** struct epoll_event is packed on x86-64: a u32 of flags, then 64 bits of data (the descriptor here). */
const EVENT_BYTES = 12;
const EVENTS_PER_WAIT = 256;
/** sizeof(struct sockaddr_in6), the larger of the two address families. */
const SOCKADDR_BYTES = 28;
/** Accepts per readiness of a listener: the rest wait for the next poll, after the other sockets' turn. */
const ACCEPTS_PER_EVENT = 64;
/** Out of descriptors or memory, a listener leaves the poll this long before it tries again. */
const ACCEPT_PAUSE_MS = 100;
const READ_EVENTS = EPOLLIN | EPOLLRDHUP | EPOLLET;
const READ_WRITE_EVENTS = READ_EVENTS | EPOLLOUT;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  // size_t lengths passed as u32 and ssize_t results read as i32: lengths here are far below 2 GiB, -1 stays
  // -1, and on x86-64 a 32-bit argument reaches its register zero-extended. A 64-bit parameter takes a
  // BigInt: given numbers, the runtime's wrapper of the call was deoptimized every few thousand calls and
  // compiled again, on the broker's core (p99 at 10k msg/s 1.1-1.8 ms instead of about 0.2).
  recv: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_poll: { name: "epoll_wait", parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Why epoll I/O cannot run here, or undefined when it can. */
export function epollUnsupported(): string | undefined {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    return `listener io = epoll runs on Linux x86-64 only, not ${Deno.build.target}`;
  }
  return undefined;
}

/** Something the poller reports readiness to. */
interface Watched {
  onReady(flags: number): void;
}

/**
 * The process's epoll loop: started by the first descriptor it watches, ended (and libc closed, so that
 * nothing outlives a broker stopped in a test) when the last is gone.
 */
class Poller {
  readonly #library: Deno.DynamicLibrary<typeof SYMBOLS>;
  readonly sys: Libc;
  readonly #errno: Deno.UnsafePointerView;
  readonly #epoll: number;
  readonly #wake: number;
  readonly #watched = new Map<number, Watched>();
  readonly #event = new Uint8Array(EVENT_BYTES);
  readonly #eventView = new DataView(this.#event.buffer);
  readonly #events = new Uint8Array(EVENT_BYTES * EVENTS_PER_WAIT);
  readonly #eventsView = new DataView(this.#events.buffer);
  readonly #wakeBytes = new BigUint64Array([1n]);
  #waiting = false;
  #ended = false;
  /** Settles when the loop has ended and every descriptor of its own is closed. */
  readonly stopped: Promise<void>;
  /** Told when the loop itself fails (epoll_wait refused): every listener's error log. */
  readonly onLoopError = new Set<(error: unknown) => void>();

  constructor() {
    const unsupported = epollUnsupported();
    if (unsupported) throw new Error(unsupported);
    this.#library = Deno.dlopen("libc.so.6", SYMBOLS);
    this.sys = this.#library.symbols;
    const location = this.sys.__errno_location();
    this.#errno = new Deno.UnsafePointerView(location!);
    this.#epoll = this.sys.epoll_create1(EPOLL_CLOEXEC);
    this.#wake = this.#epoll < 0 ? -1 : this.sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#wake < 0 || !this.#control(EPOLL_CTL_ADD, this.#wake, EPOLLIN)) {
      const error = this.error(this.#epoll < 0 ? "epoll_create1" : "eventfd");
      if (this.#wake >= 0) this.sys.close(this.#wake);
      if (this.#epoll >= 0) this.sys.close(this.#epoll);
      this.#library.close();
      throw error;
    }
    this.stopped = this.#run();
  }

  /** The errno of the last failed call on this thread. */
  errno(): number {
    return this.#errno.getInt32();
  }

  /** The last failed call as an error of Deno's own kind where there is one (as `Deno.Conn` would throw). */
  error(call: string, errno = this.errno()): Error {
    const text = Deno.UnsafePointerView.getCString(this.sys.strerror(errno)!);
    const message = `${call}: ${text} (os error ${errno})`;
    switch (errno) {
      case ECONNRESET:
        return new Deno.errors.ConnectionReset(message);
      case EPIPE:
        return new Deno.errors.BrokenPipe(message);
      case EADDRINUSE:
        return new Deno.errors.AddrInUse(message);
      case EADDRNOTAVAIL:
        return new Deno.errors.AddrNotAvailable(message);
      case EACCES:
        return new Deno.errors.PermissionDenied(message);
      case ETIMEDOUT:
        return new Deno.errors.TimedOut(message);
      default:
        return new Error(message);
    }
  }

  watch(fd: number, events: number, watched: Watched): boolean {
    if (!this.#control(EPOLL_CTL_ADD, fd, events)) return false;
    this.#watched.set(fd, watched);
    return true;
  }

  /** Changes what `fd` is polled for; 0 leaves it out of the poll while it stays watched. */
  modify(fd: number, events: number): boolean {
    return events === 0 ? this.#control(EPOLL_CTL_DEL, fd, 0) : this.#control(EPOLL_CTL_MOD, fd, events);
  }

  /** Re-adds a descriptor that `modify(fd, 0)` left out. */
  resume(fd: number, events: number): boolean {
    return this.#control(EPOLL_CTL_ADD, fd, events);
  }

  /** Forgets `fd` (its close takes it out of epoll); the last one ends the loop. */
  forget(fd: number): void {
    if (!this.#watched.delete(fd) || this.#watched.size > 0) return;
    if (this.#waiting) this.sys.write(this.#wake, this.#wakeBytes, 8);
  }

  #control(operation: number, fd: number, events: number): boolean {
    this.#eventView.setUint32(0, events >>> 0, true);
    this.#eventView.setUint32(4, fd, true);
    this.#eventView.setUint32(8, 0, true);
    return this.sys.epoll_ctl(this.#epoll, operation, fd, this.#event) === 0;
  }

  async #run(): Promise<void> {
    // The first descriptor is watched right after the constructor returns.
    await Promise.resolve();
    try {
      while (this.#watched.size > 0) {
        let count = this.sys.epoll_poll(this.#epoll, this.#events, EVENTS_PER_WAIT, 0);
        if (count === 0) {
          this.#waiting = true;
          count = await this.sys.epoll_wait(this.#epoll, this.#events, EVENTS_PER_WAIT, -1);
          this.#waiting = false;
        }
        if (count < 0) {
          const errno = this.errno();
          if (errno !== EINTR) await this.#loopFailed(this.error("epoll_wait", errno));
          continue;
        }
        this.#dispatch(count);
        // The reads just resolved run now; timers, workers and Deno's own sockets get their turn too.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.#ended = true;
      if (current === this) current = undefined;
      this.sys.close(this.#wake);
      this.sys.close(this.#epoll);
      this.#library.close();
    }
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Nothing is watched: the loop is ending. */
  get idle(): boolean {
    return this.#watched.size === 0;
  }

  #dispatch(count: number): void {
    const view = this.#eventsView;
    for (let i = 0; i < count; i++) {
      const flags = view.getUint32(i * EVENT_BYTES, true);
      const fd = view.getUint32(i * EVENT_BYTES + 4, true);
      if (fd === this.#wake) {
        this.sys.read(this.#wake, this.#wakeBytes, 8);
        this.#wakeBytes[0] = 1n;
        continue;
      }
      // A descriptor closed since the wait returned is gone from the map; one reused since then by a new
      // socket gets a readiness its first read or write finds to be EAGAIN.
      this.#watched.get(fd)?.onReady(flags);
    }
  }

  async #loopFailed(error: unknown): Promise<void> {
    for (const report of this.onLoopError) report(error);
    await new Promise((resolve) => setTimeout(resolve, ACCEPT_PAUSE_MS));
  }
}

let current: Poller | undefined;

function poller(): Poller {
  if (current === undefined || current.ended) current = new Poller();
  return current;
}

/**
 * For a broker that has closed its epoll listeners and sockets: settles once the loop has ended if they were
 * the last it watched (no FFI call is left pending), at once if another broker in this process still has
 * some open.
 */
export function epollStopped(): Promise<void> {
  return current?.idle ? current.stopped : Promise.resolve();
}

/** The pending read of a socket: where its bytes go and who waits for them. */
interface PendingRead {
  buffer: Uint8Array;
  resolve: (n: number | null) => void;
  reject: (error: unknown) => void;
}

interface PendingWrite {
  data: Uint8Array;
  resolve: (n: number) => void;
  reject: (error: unknown) => void;
}

/**
 * An accepted socket. Its remote address is kept as the accept gave it (an IPv4 address and port packed in
 * one number, an IPv6 one as text) and made into `host:port` when asked for.
 */
class EpollSocket implements ByteStream, Accepted, Watched {
  #readable = true;
  #writable = true;
  #closed = false;
  #read: PendingRead | undefined;
  #write: PendingWrite | undefined;

  constructor(
    private readonly poller: Poller,
    private readonly fd: number,
    private readonly address: number | string,
  ) {}

  get stream(): ByteStream {
    return this;
  }

  get remoteAddress(): string {
    const address = this.address;
    if (typeof address === "string") return address;
    const ip = Math.floor(address / 65536);
    return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}:${address % 65536}`;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("the socket is closed"));
    if (this.#read) return Promise.reject(new Deno.errors.Busy("a read is already pending"));
    if (buffer.byteLength === 0) return Promise.resolve(0);
    if (this.#readable) {
      try {
        const n = this.#receive(buffer);
        if (n !== undefined) return Promise.resolve(n);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return new Promise((resolve, reject) => {
      this.#read = { buffer, resolve, reject };
    });
  }

  /** Bytes read, null at the end of the stream, undefined when none are there yet (then not readable). */
  #receive(buffer: Uint8Array): number | null | undefined {
    for (;;) {
      const n = this.poller.sys.recv(this.fd, buffer, buffer.byteLength, 0);
      if (n > 0) return n;
      if (n === 0) return null;
      const errno = this.poller.errno();
      if (errno === EINTR) continue;
      if (errno === EAGAIN) {
        this.#readable = false;
        return undefined;
      }
      throw this.poller.error("recv", errno);
    }
  }

  write(data: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("the socket is closed"));
    if (this.#write) return Promise.reject(new Deno.errors.Busy("a write is already pending"));
    if (data.byteLength === 0) return Promise.resolve(0);
    if (this.#writable) {
      try {
        const n = this.#send(data);
        if (n !== undefined) return Promise.resolve(n);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    // Full: wait for room. Adding EPOLLOUT reports it at once if room came since the send.
    this.poller.modify(this.fd, READ_WRITE_EVENTS);
    return new Promise((resolve, reject) => {
      this.#write = { data, resolve, reject };
    });
  }

  writeNow(data: Uint8Array): number | undefined {
    if (this.#closed) throw new Deno.errors.BadResource("the socket is closed");
    if (this.#write) throw new Deno.errors.Busy("a write is already pending");
    return this.#writable ? this.#send(data) : undefined;
  }

  #send(data: Uint8Array): number | undefined {
    for (;;) {
      const n = this.poller.sys.send(this.fd, data, data.byteLength, MSG_NOSIGNAL);
      if (n >= 0) return n;
      const errno = this.poller.errno();
      if (errno === EINTR) continue;
      if (errno === EAGAIN) {
        this.#writable = false;
        return undefined;
      }
      throw this.poller.error("send", errno);
    }
  }

  onReady(flags: number): void {
    if ((flags & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0) {
      this.#readable = true;
      const pending = this.#read;
      if (pending) {
        try {
          const n = this.#receive(pending.buffer);
          if (n !== undefined) {
            this.#read = undefined;
            pending.resolve(n);
          }
        } catch (error) {
          this.#read = undefined;
          pending.reject(error);
        }
      }
    }
    if ((flags & (EPOLLOUT | EPOLLHUP | EPOLLERR)) !== 0) {
      this.#writable = true;
      const pending = this.#write;
      if (pending) {
        try {
          const n = this.#send(pending.data);
          if (n !== undefined) {
            this.#write = undefined;
            this.poller.modify(this.fd, READ_EVENTS);
            pending.resolve(n);
          }
        } catch (error) {
          this.#write = undefined;
          pending.reject(error);
        }
      }
    }
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("the socket is closed"));
    if (this.poller.sys.shutdown(this.fd, SHUT_WR) !== 0) {
      return Promise.reject(this.poller.error("shutdown"));
    }
    return Promise.resolve();
  }

  /** Closes the socket: a pending read ends as at the end of the stream, a pending write fails. */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("the socket is closed");
    this.#closed = true;
    this.poller.sys.close(this.fd);
    this.poller.forget(this.fd);
    const [read, write] = [this.#read, this.#write];
    this.#read = this.#write = undefined;
    read?.resolve(null);
    write?.reject(new Deno.errors.BadResource("the socket is closed"));
  }
}

/** A bind address made into a sockaddr: IPv4 or IPv6 literals, and `localhost` as 127.0.0.1. */
export function socketAddress(hostname: string, port: number): Uint8Array {
  const address = new Uint8Array(SOCKADDR_BYTES);
  const view = new DataView(address.buffer);
  view.setUint16(2, port, false);
  const v4 = parseIPv4(hostname === "localhost" ? "127.0.0.1" : hostname);
  if (v4) {
    view.setUint16(0, AF_INET, true);
    address.set(v4, 4);
    return address.subarray(0, 16);
  }
  const v6 = parseIPv6(hostname);
  if (!v6) {
    throw new Error(`listener io = epoll binds an IP address (or localhost), and "${hostname}" is not one`);
  }
  view.setUint16(0, AF_INET6, true);
  address.set(v6, 8);
  return address;
}

function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (
    parts.length !== 4 || !parts.every((part) => /^(0|[1-9][0-9]{0,2})$/.test(part) && Number(part) < 256)
  ) {
    return undefined;
  }
  return new Uint8Array(parts.map(Number));
}

function parseIPv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === "") return [];
    const result: number[] = [];
    for (const group of half.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
      result.push(parseInt(group, 16));
    }
    return result;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 255;
  });
  return bytes;
}

/** An IPv6 address as Rust (and so Deno) prints it: RFC 5952, IPv4-mapped ones as ::ffff:a.b.c.d. */
export function formatIPv6(bytes: Uint8Array): string {
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let [bestStart, bestLength] = [-1, 0];
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength && end - i > 1) [bestStart, bestLength] = [i, end - i];
    i = end;
  }
  const hex = (list: number[]) => list.map((group) => group.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** A listening socket in the poll: accepts what is queued, at most {@link ACCEPTS_PER_EVENT} a time. */
class EpollListener implements Watched {
  readonly #address = new Uint8Array(SOCKADDR_BYTES);
  readonly #addressView = new DataView(this.#address.buffer);
  readonly #addressLength = new Uint32Array(1);
  readonly #yes = new Int32Array([1]);
  #closed = false;
  #paused: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly poller: Poller,
    private readonly fd: number,
    private readonly onAccept: (accepted: Accepted) => void,
    private readonly onError: (error: unknown) => void,
  ) {}

  onReady(): void {
    const sys = this.poller.sys;
    for (let i = 0; i < ACCEPTS_PER_EVENT && !this.#closed; i++) {
      this.#addressLength[0] = SOCKADDR_BYTES;
      const fd = sys.accept4(this.fd, this.#address, this.#addressLength, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const errno = this.poller.errno();
        if (errno === EAGAIN) return;
        // The client gave up before its turn came: the next one's.
        if (errno === EINTR || errno === ECONNABORTED || errno === EPROTO) continue;
        this.onError(this.poller.error("accept4", errno));
        if (errno === EMFILE || errno === ENFILE || errno === ENOBUFS || errno === ENOMEM) this.#pause();
        return;
      }
      sys.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, this.#yes, 4);
      const socket = new EpollSocket(this.poller, fd, this.#remote());
      if (!this.poller.watch(fd, READ_EVENTS, socket)) {
        this.onError(this.poller.error("epoll_ctl"));
        sys.close(fd);
        continue;
      }
      try {
        this.onAccept(socket);
      } catch (error) {
        this.onError(error);
      }
    }
  }

  #remote(): number | string {
    const view = this.#addressView;
    const port = view.getUint16(2, false);
    if (view.getUint16(0, true) === AF_INET) return view.getUint32(4, false) * 65536 + port;
    return `${formatIPv6(this.#address.subarray(8, 24))}:${port}`;
  }

  /** Out of descriptors: out of the poll for a while (it would report the same queue at once), then back. */
  #pause(): void {
    if (this.#paused !== undefined || !this.poller.modify(this.fd, 0)) return;
    this.#paused = setTimeout(() => {
      this.#paused = undefined;
      if (!this.#closed) this.poller.resume(this.fd, EPOLLIN);
    }, ACCEPT_PAUSE_MS);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#paused);
    this.poller.sys.close(this.fd);
    this.poller.forget(this.fd);
  }
}

/**
 * Listens on TCP with epoll I/O: like `listenTcp` (Nagle off, each connection handed to `onAccept`, accept
 * failures reported to `onError` and, out of descriptors, retried after a pause), with the socket calls
 * libc's. Throws when it cannot listen, with Deno's error kind where there is one (AddrInUse).
 */
export function listenEpollTcp(
  options: { name: string; hostname: string; port: number },
  onAccept: (accepted: Accepted) => void,
  onError: (error: unknown) => void,
): Listener {
  const address = socketAddress(options.hostname, options.port);
  const loop = poller();
  const sys = loop.sys;
  const family = new DataView(address.buffer).getUint16(0, true);
  const fd = sys.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw loop.error("socket");
  const fail = (call: string): Error => {
    const error = loop.error(call);
    sys.close(fd);
    return error;
  };
  if (sys.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, new Int32Array([1]), 4) !== 0) throw fail("setsockopt");
  if (sys.bind(fd, address, address.byteLength) !== 0) throw fail("bind");
  if (sys.listen(fd, 511) !== 0) throw fail("listen");
  const bound = new Uint8Array(SOCKADDR_BYTES);
  if (sys.getsockname(fd, bound, new Uint32Array([SOCKADDR_BYTES])) !== 0) throw fail("getsockname");
  const port = new DataView(bound.buffer).getUint16(2, false);
  const listener = new EpollListener(loop, fd, onAccept, onError);
  if (!loop.watch(fd, EPOLLIN, listener)) throw fail("epoll_ctl");
  loop.onLoopError.add(onError);
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  return {
    name: options.name,
    port,
    hostname: options.hostname,
    close() {
      loop.onLoopError.delete(onError);
      listener.close();
      resolveDone();
    },
    done,
  };
}
