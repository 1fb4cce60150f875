/**
 * The one gate every login passes, whatever its method (password, access key, SCRAM, client certificate,
 * anonymous): per client address it
 * - lets at most {@link DEFAULT_CONCURRENCY_PER_ADDRESS} attempts run at once, so a reconnect storm cannot try
 *   hundreds of passwords before the first failure is even recorded;
 * - waits out the address's failure delay ({@link LoginThrottle});
 * - answers every refusal no sooner than `refusalFloorMs` after the attempt began, so that how long a refusal
 *   took does not tell an unknown user from a wrong password;
 * - counts successes, failures and delayed attempts per method for /metrics.
 *
 * An address is an IPv4 address or an IPv6 /64 (one host usually owns a whole /64), never address and port:
 * a new TCP connection must not start afresh.
 */
import { type Clock, type FailureDelay, LoginThrottle, systemClock } from "./login_throttle.ts";

/** How a client proved (or failed to prove) who it is. */
export type LoginMethod = "anonymous" | "password" | "access_key" | "scram" | "certificate";

export const LOGIN_METHODS: readonly LoginMethod[] = [
  "anonymous",
  "password",
  "access_key",
  "scram",
  "certificate",
];

/** Counters of one method since start. */
export interface MethodStats {
  successes: number;
  failures: number;
  /** Attempts that had to wait for their address's failure delay. */
  delayed: number;
}

/** The outcome of one attempt as the guard records it; `ok` undefined = not finished (a SCRAM round trip). */
export interface LoginVerdict {
  method: LoginMethod;
  ok?: boolean;
}

export interface LoginGuardOptions {
  delay: FailureDelay;
  /** Earliest answer to a refused attempt, from its start. Default {@link DEFAULT_REFUSAL_FLOOR_MS}. */
  refusalFloorMs?: number;
  /** Attempts from one address that run at once; the rest queue. Default {@link DEFAULT_CONCURRENCY_PER_ADDRESS}. */
  concurrencyPerAddress?: number;
  clock?: Clock;
}

/**
 * 100 ms: above what a password check costs here (5 ms at 4000 PBKDF2 iterations, ~30 ms on a busy machine),
 * so refusals all take the floor, and short enough that a person with a typo does not notice.
 */
export const DEFAULT_REFUSAL_FLOOR_MS = 100;
/** Enough for a NAT full of devices reconnecting after a restart; few enough that guessing stays serial. */
export const DEFAULT_CONCURRENCY_PER_ADDRESS = 4;

/**
 * The key the slowdown counts an address under: the IP without the port, IPv4-mapped IPv6 as IPv4, IPv6 cut to
 * its /64. Takes what the transports produce, `host:port` (`1.2.3.4:5678`, `2001:db8::1:5678`) or
 * `[host]:port`; a string without a `:port` suffix is taken whole.
 */
export function clientAddressKey(remote: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(remote);
  const withPort = /^(.*):\d+$/.exec(remote);
  const host = bracketed ? bracketed[1] : withPort ? withPort[1] : remote;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped) return mapped[1];
  if (!host.includes(":")) return host;
  return `${ipv6Groups(host).slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (a trailing dotted IPv4 part is taken as two groups). */
function ipv6Groups(address: string): string[] {
  const zoneless = address.split("%")[0].toLowerCase();
  const [head, tail = undefined] = zoneless.split("::");
  const parse = (part: string | undefined) => part ? part.split(":").filter((group) => group !== "") : [];
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const missing = Math.max(0, 8 - left.length - right.length);
  return [...left, ...Array(missing).fill("0"), ...right].map((group) => group.replace(/^0+(?=.)/, ""));
}

interface AddressGate {
  active: number;
  waiting: (() => void)[];
}

/** Per-address concurrency, failure delay, constant-time refusals and per-method counters for logins. */
export class LoginGuard {
  readonly #throttle: LoginThrottle;
  readonly #clock: Clock;
  readonly #refusalFloorMs: number;
  readonly #concurrency: number;
  readonly #gates = new Map<string, AddressGate>();
  readonly #stats = new Map<LoginMethod, MethodStats>(
    LOGIN_METHODS.map((method) => [method, { successes: 0, failures: 0, delayed: 0 }]),
  );

  constructor(options: LoginGuardOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#throttle = new LoginThrottle(options.delay, this.#clock);
    this.#refusalFloorMs = options.refusalFloorMs ?? DEFAULT_REFUSAL_FLOOR_MS;
    this.#concurrency = options.concurrencyPerAddress ?? DEFAULT_CONCURRENCY_PER_ADDRESS;
  }

  /**
   * Runs one login step for `remoteAddress`: waits for a free slot and the address's turn, runs `attempt`,
   * records its verdict and holds a refusal back until the floor. `waitTurn` false skips the failure delay for a
   * step that decides nothing (the first message of a SCRAM exchange).
   */
  async run<T>(
    remoteAddress: string,
    attempt: () => Promise<T>,
    verdict: (result: T) => LoginVerdict,
    waitTurn = true,
  ): Promise<T> {
    const address = clientAddressKey(remoteAddress);
    await this.#acquire(address);
    try {
      const waited = waitTurn ? await this.#throttle.waitTurn(address) : 0;
      const startedAt = this.#clock.now();
      const result = await attempt();
      const { method, ok } = verdict(result);
      const stats = this.#stats.get(method)!;
      if (waited > 0) stats.delayed++;
      if (ok === true) {
        stats.successes++;
        this.#throttle.recordSuccess(address);
      } else if (ok === false) {
        stats.failures++;
        this.#throttle.recordFailure(address);
        const left = startedAt + this.#refusalFloorMs - this.#clock.now();
        if (left > 0) await this.#clock.sleep(left);
      }
      return result;
    } finally {
      this.#release(address);
    }
  }

  /** A success that needed no guarding (an anonymous client let in), for the counters alone. */
  countSuccess(method: LoginMethod): void {
    this.#stats.get(method)!.successes++;
  }

  /** A failure seen outside a login exchange, such as a rejected client certificate in the TLS handshake. */
  recordFailure(remoteAddress: string, method: LoginMethod): void {
    this.#stats.get(method)!.failures++;
    this.#throttle.recordFailure(clientAddressKey(remoteAddress));
  }

  /** Counters per method since start. */
  stats(): Record<LoginMethod, MethodStats> {
    return Object.fromEntries([...this.#stats].map(([method, stats]) => [method, { ...stats }])) as Record<
      LoginMethod,
      MethodStats
    >;
  }

  async #acquire(address: string): Promise<void> {
    let gate = this.#gates.get(address);
    if (!gate) this.#gates.set(address, gate = { active: 0, waiting: [] });
    if (gate.active < this.#concurrency) {
      gate.active++;
      return;
    }
    // the slot is handed over by #release, so `active` stays as it is
    await new Promise<void>((resolve) => gate.waiting.push(resolve));
  }

  #release(address: string): void {
    const gate = this.#gates.get(address)!;
    const next = gate.waiting.shift();
    if (next) return next();
    if (--gate.active === 0) this.#gates.delete(address);
  }
}
