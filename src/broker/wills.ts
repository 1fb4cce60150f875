import type { Will } from "../codec/types.ts";
import type { Message } from "../session/types.ts";
import type { StoredWill } from "../storage/port.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import type { Persistence } from "./persistence.ts";

interface ArmedWill {
  will: Will;
  /** The identity of the client that set it, to authorize it again when it is published. */
  owner?: string;
  /** Set once the client is gone and the will waits for its delay [MQTT-3.1.3-9]. */
  timer?: TimerHandle;
  publishAt?: number;
}

/**
 * Will messages: armed while their client is connected (and stored, so a crash cannot lose them),
 * published when it leaves abnormally, after the Will Delay Interval if it has one, and cancelled when the
 * client comes back in time or leaves normally.
 */
export class WillService {
  readonly #armed = new Map<string, ArmedWill>();

  /**
   * `onDue` is called when a delayed will's time has come; it calls {@link publishDue} (at once, or when a
   * cluster has put the moment in its log).
   */
  constructor(
    private readonly persistence: Persistence,
    private readonly clock: Clock,
    private readonly publish: (message: Message) => void,
    private readonly onDue: (clientId: string) => void,
    private readonly authorize?: (clientId: string, owner: string | undefined, will: Will) => boolean,
  ) {}

  /** The client connected with `will` (or none): any previous will of this client id is replaced. */
  arm(clientId: string, will: Will | undefined, owner?: string): void {
    this.#forget(clientId);
    if (will) this.#armed.set(clientId, { will, owner });
    this.persistence.willArmed(clientId, will, owner);
  }

  /** The Will Delay Interval of the client's armed will, 0 without one. */
  delaySeconds(clientId: string): number {
    return this.#armed.get(clientId)?.will.properties.willDelayInterval ?? 0;
  }

  /** True when a will waits for its delay: the client left and may still come back in time. */
  delayed(clientId: string): boolean {
    return this.#armed.get(clientId)?.timer !== undefined;
  }

  /** The client left normally, or came back before the delay passed: its will is not sent [MQTT-3.1.2-10]. */
  cancel(clientId: string): void {
    if (!this.#armed.has(clientId)) return;
    this.#forget(clientId);
    this.persistence.willArmed(clientId, undefined);
  }

  /**
   * The client left abnormally: publish its will now, or after `delaySeconds` (already capped by the
   * session's expiry) unless it comes back first.
   */
  trigger(clientId: string, delaySeconds: number): void {
    const armed = this.#armed.get(clientId);
    if (!armed || armed.timer !== undefined) return;
    if (delaySeconds <= 0) return this.publishNow(clientId);
    this.#schedule(clientId, armed, this.clock.now() + delaySeconds * 1000);
  }

  /** The delayed will of `clientId` is due: publish it, unless the client came back meanwhile. */
  publishDue(clientId: string): void {
    if (this.delayed(clientId)) this.publishNow(clientId);
  }

  /**
   * Publishes the client's will at once, if it has one (its session ended, or it was taken over), and if
   * its owner may still publish it: the rules may have changed since its CONNECT.
   */
  publishNow(clientId: string): void {
    const armed = this.#armed.get(clientId);
    if (!armed) return;
    this.#forget(clientId);
    this.persistence.willArmed(clientId, undefined);
    if (this.authorize?.(clientId, armed.owner, armed.will) === false) return;
    this.publish(willMessage(armed.will, this.clock.now()));
  }

  /**
   * Wills found in storage at start: a connected client's (no deadline; the node died under it) goes out
   * after its delay counted from now, a delayed one at its deadline; either goes out at once when its
   * session is gone. `delayOf` is the delay capped by the session's expiry, undefined without a session.
   */
  restore(wills: StoredWill[], delayOf: (clientId: string, will: Will) => number | undefined): void {
    const now = this.clock.now();
    for (const { clientId, will, publishAt, owner } of wills) {
      const armed: ArmedWill = { will, owner };
      this.#armed.set(clientId, armed);
      const delay = delayOf(clientId, will);
      const at = delay === undefined ? now : publishAt ?? now + delay * 1000;
      if (at <= now) this.publishNow(clientId);
      else this.#schedule(clientId, armed, at);
    }
  }

  /** Every armed will, with its deadline when its client is gone and it waits for its delay. */
  exportAll(): StoredWill[] {
    return [...this.#armed].map(([clientId, { will, publishAt, owner }]) => ({
      clientId,
      will,
      publishAt,
      owner,
    }));
  }

  /** Wills taken from another node's {@link exportAll}: armed, and the delayed ones scheduled. */
  importAll(wills: StoredWill[]): void {
    for (const { clientId, will, publishAt, owner } of wills) {
      const armed: ArmedWill = { will, owner };
      this.#armed.set(clientId, armed);
      if (publishAt === undefined) this.persistence.willArmed(clientId, will, owner);
      else this.#schedule(clientId, armed, publishAt);
    }
  }

  /** Disarms every will, publishing none (see Broker.clearState). */
  forgetAll(): void {
    for (const clientId of [...this.#armed.keys()]) this.cancel(clientId);
  }

  stop(): void {
    for (const armed of this.#armed.values()) this.clock.cancel(armed.timer);
  }

  #schedule(clientId: string, armed: ArmedWill, publishAt: number): void {
    armed.publishAt = publishAt;
    this.persistence.willArmed(clientId, armed.will, armed.owner, publishAt);
    armed.timer = this.clock.after(Math.max(0, publishAt - this.clock.now()), this.onDue, clientId);
  }

  #forget(clientId: string): void {
    const armed = this.#armed.get(clientId);
    if (!armed) return;
    this.clock.cancel(armed.timer);
    this.#armed.delete(clientId);
  }
}

/** The message a will becomes: its properties without the Will Delay Interval, expiry counted from now. */
export function willMessage(will: Will, now: number): Message {
  const expiry = will.properties.messageExpiryInterval;
  const properties = { ...will.properties };
  delete properties.willDelayInterval;
  return {
    topic: will.topic,
    payload: will.payload,
    qos: will.qos,
    retain: will.retain,
    properties,
    publisherId: "",
    expiresAt: expiry === undefined ? undefined : now + expiry * 1000,
  };
}
