/**
 * What an authenticated client may do, decided at the edge of the broker: the permission hooks the session
 * asks on PUBLISH, SUBSCRIBE and at every delivery, the topics no client may publish to, who owns a session
 * and whether a CONNECT may take over a connected client id.
 */
import type { Authorizer, ClientIdentity } from "../auth/port.ts";
import { ownerUsername } from "../broker/mod.ts";
import type { Permissions } from "../session/mod.ts";

/** Who may disconnect a connected client by connecting with its client id (`mqtt.takeover`). */
export type TakeoverPolicy = "allow" | "same_user" | "deny";

/**
 * Why a client may not publish to `topic` whatever the ACL says, or undefined. Every `$` topic is the
 * broker's (`$SYS/...`) or a feature's, and no feature defines one a client may publish to: a client that
 * could, could forge the broker's own statistics or retain a message where monitoring reads.
 */
export function reservedTopicReason(topic: string): string | undefined {
  return topic.charCodeAt(0) === 0x24 /* $ */
    ? "topics starting with $ are reserved for the broker"
    : undefined;
}

/** Hears of each PUBLISH the permissions refuse (for the log). */
export interface DenialListener {
  publishDenied(topic: string, reason: string): void;
}

/**
 * The permissions of one client. `listener` hears of each refused PUBLISH. Without an authorizer only the
 * reserved topics are refused and nothing is checked at delivery (a connection answers that itself, with
 * {@link mayPublishWithoutAcl}: no object per client).
 */
export function clientPermissions(
  identity: ClientIdentity,
  authorizer: Authorizer | undefined,
  listener: DenialListener,
): Permissions {
  return authorizer
    ? new ClientPermissions(identity, authorizer, listener)
    : new ReservedTopicsOnly(listener);
}

/** Without an authorizer, whether a client may publish to `topic`: any but a reserved one (`listener` hears). */
export function mayPublishWithoutAcl(topic: string, listener: DenialListener): boolean {
  const reserved = reservedTopicReason(topic);
  if (reserved !== undefined) listener.publishDenied(topic, reserved);
  return reserved === undefined;
}

/** Without an authorizer: only the reserved topics are refused, and deliveries are not checked at all. */
class ReservedTopicsOnly implements Permissions {
  constructor(private readonly listener: DenialListener) {}

  canPublish(topic: string): boolean {
    return mayPublishWithoutAcl(topic, this.listener);
  }

  canSubscribe(): boolean {
    return true;
  }
}

/**
 * With an authorizer: one object per connected client, with methods on the prototype (an idle client holds
 * no closures and no scope for them). It is its own identity for the authorizer (client id and user name).
 */
class ClientPermissions implements Permissions, ClientIdentity {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly canReceive: (topic: string) => boolean;

  constructor(
    identity: ClientIdentity,
    private readonly authorizer: Authorizer,
    private readonly listener: DenialListener,
  ) {
    this.clientId = identity.clientId;
    this.username = identity.username;
    this.canReceive = authorizer.receiverFor?.(this) ?? ((topic) => authorizer.canReceive(this, topic));
  }

  canPublish(topic: string): boolean {
    const reserved = reservedTopicReason(topic);
    if (reserved !== undefined) {
      this.listener.publishDenied(topic, reserved);
      return false;
    }
    if (!this.authorizer.canPublish(this, topic)) {
      this.listener.publishDenied(topic, "the ACL does not allow it");
      return false;
    }
    return true;
  }

  canSubscribe(filter: string): boolean {
    return this.authorizer.canSubscribe(this, filter);
  }
}

/** Whether a CONNECT from `owner` may disconnect the connected holder of its client id, owned by `current`. */
export function mayTakeOver(policy: TakeoverPolicy, current: string | undefined, owner: string): boolean {
  // a session stored before owners were recorded has no owner: as with allow, the newcomer decides
  return policy === "allow" || (policy === "same_user" && (current === undefined || current === owner));
}

/** Why this client may not leave a will on `topic` (checked at CONNECT and again at publication), or undefined. */
export function willRefusal(
  topic: string,
  identity: ClientIdentity,
  authorizer: Authorizer | undefined,
): string | undefined {
  if (reservedTopicReason(topic) !== undefined || authorizer?.canPublish(identity, topic) === false) {
    return `may not publish a will on ${JSON.stringify(topic)}`;
  }
  return undefined;
}

/** What a CONNECT does to the current holder of its client id, as the log reports it. */
export interface Admission {
  /** Set when the CONNECT is refused (a will it may not publish, a takeover it may not make). */
  refusal?: string;
  /** Log events to write once the session is open: `session.takeover`, `session.owner_changed`. */
  events: readonly { event: string; fields: Record<string, unknown> }[];
}

/** A CONNECT with nothing to refuse and nothing to log, the usual one: one object for all of them. */
const ADMITTED: Admission = Object.freeze({ events: Object.freeze([]) });

/**
 * Decides whether an authenticated CONNECT may proceed, given the current holder of its client id
 * (`broker.owner(clientId)`), and what to log about it. Every takeover is logged with both identities.
 */
export function admit(
  request: { will?: { topic: string }; identity: ClientIdentity; owner: string; policy: TakeoverPolicy },
  current: { owner?: string; connected: boolean } | undefined,
  authorizer: Authorizer | undefined,
): Admission {
  const { will, identity, owner, policy } = request;
  if (will) {
    const refusal = willRefusal(will.topic, identity, authorizer);
    if (refusal) return { refusal, events: [] };
  }
  if (current === undefined) return ADMITTED;
  const both = {
    previousUser: ownerUsername(current.owner) ?? null,
    user: identity.username ?? null,
    policy,
  };
  if (current.connected && !mayTakeOver(policy, current.owner, owner)) {
    return {
      refusal: "client identifier in use by a connected client that may not be taken over",
      events: [{ event: "session.takeover_refused", fields: both }],
    };
  }
  const events: Admission["events"][number][] = [];
  if (current.connected) events.push({ event: "session.takeover", fields: both });
  if (current.owner !== undefined && current.owner !== owner) {
    events.push({ event: "session.owner_changed", fields: both });
  }
  return events.length === 0 ? ADMITTED : { events };
}

/**
 * Writes at most one line a second, each with the number of lines held back since the one before, so that a
 * client hammering a forbidden topic cannot flood the log.
 */
export class RateLimitedLog {
  #writtenAt = -Infinity;
  #heldBack = 0;

  constructor(private readonly sink: (fields: Record<string, unknown>) => void) {}

  write(fields: Record<string, unknown>): void {
    const now = performance.now();
    if (now - this.#writtenAt < 1000) {
      this.#heldBack++;
      return;
    }
    this.sink({ ...fields, heldBack: this.#heldBack });
    this.#writtenAt = now;
    this.#heldBack = 0;
  }
}
