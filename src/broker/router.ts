import type { QoS } from "../codec/types.ts";
import { type Session, shareFrame } from "../session/session.ts";
import type { Delivery, Message, SessionSubscription } from "../session/types.ts";
import { parseSharedFilter, type SharedGroup, SubscriptionTrie } from "../topic/mod.ts";

/**
 * What the router hands a delivery to: a session, or what holds one (the broker's registry entry, so that a
 * delivery needs no lookup by client id to find its connection).
 */
export interface RouteTarget {
  readonly session: Session;
}

/**
 * Numbers every routing pass of every router in the process, so that a session's mark (Session.routePass)
 * names one pass of one router.
 */
let lastPass = 0;

/**
 * Which subscriptions a routing pass serves. A cluster routes a message twice: at once on the node it was
 * published on (plain subscriptions of that node's transient sessions), and again when every node applies it
 * from the cluster log (persistent sessions, shared groups, and the transient sessions of other nodes).
 */
export interface RouteScope {
  transient: boolean;
  persistent: boolean;
  shared: boolean;
}

/** Every subscription: the one pass of a single node. */
export const EVERYONE: RouteScope = { transient: true, persistent: true, shared: true };

/** A subscription entering or leaving the router; a cluster announces these to the other nodes. */
export interface RouteChange {
  kind: "added" | "removed";
  clientId: string;
  subscription: SessionSubscription;
}

/**
 * The subscription tree and local fan-out: for one message, one delivery per client at the highest QoS of
 * its matching subscriptions, with every matching Subscription Identifier (docs/architecture.md,
 * "Overlapping subscriptions"), and one member per `$share` group. Knows nothing of sockets or storage.
 */
export class Router<T extends RouteTarget = RouteTarget> {
  /**
   * Subscriptions by target: the trie holds the target and its subscription as they are, with no object
   * pairing them (40 B per subscription, and a broker may hold millions of offline sessions).
   */
  readonly #trie = new SubscriptionTrie<T, SessionSubscription>();
  /** Reused per message: one delivery per client, in the order the clients were reached. */
  readonly #matchedTargets: (T | undefined)[] = [];
  readonly #matchedDeliveries: (Delivery | undefined)[] = [];
  /**
   * The deliveries of this pass's message shared by the transient sessions it reaches through one plain
   * subscription (no Subscription Identifier), by {@link plainSlot}: a fan-out to a hundred clients makes
   * one delivery, not a hundred (a session never changes a delivery; see OutboundFlow). A persistent session
   * gets its own: storage writes its ref into it.
   */
  readonly #plainDeliveries: (Delivery | undefined)[] = [
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ];
  #matched = 0;
  #pass = 0;
  #message: Message | undefined;
  #scope: RouteScope = EVERYONE;
  /** Called for every subscription added or removed, e.g. to announce routes to other nodes. */
  onChange: ((change: RouteChange) => void) | undefined;

  constructor(
    private readonly strategy: "round_robin" | "random",
    private readonly random: () => number,
  ) {}

  /** Number of (filter, client) pairs, shared memberships included. */
  get size(): number {
    return this.#trie.size;
  }

  /** Adds `target`'s session's subscription; its deliveries go to `target` (one per session: the same one each time). */
  add(target: T, subscription: SessionSubscription): void {
    const shared = parseSharedFilter(subscription.topicFilter, Number.MAX_SAFE_INTEGER);
    if (shared) {
      this.#trie.add(shared.filter, target, subscription, shared.group);
    } else {
      this.#trie.add(subscription.topicFilter, target, subscription);
    }
    this.onChange?.({ kind: "added", clientId: target.session.clientId, subscription });
  }

  /** Removes the subscription {@link add} added for `target`. */
  remove(target: T, subscription: SessionSubscription): void {
    const shared = parseSharedFilter(subscription.topicFilter, Number.MAX_SAFE_INTEGER);
    const removed = shared
      ? this.#trie.remove(shared.filter, target, shared.group)
      : this.#trie.remove(subscription.topicFilter, target);
    if (!removed) return;
    this.onChange?.({ kind: "removed", clientId: target.session.clientId, subscription });
  }

  /**
   * Calls `deliver` once per client the message reaches, with its target and that client's delivery (which
   * the session may keep, unchanged: it may be shared, see Delivery). Returns how many clients it reached.
   */
  route(
    message: Message,
    deliver: (target: T, delivery: Delivery) => void,
    scope: RouteScope = EVERYONE,
  ): number {
    this.#message = message;
    this.#scope = scope;
    this.#pass = ++lastPass;
    this.#matched = 0;
    this.#trie.match(message.topic, this.#visitor);
    this.#message = undefined;
    // Not `fill`: it allocated about 120 B per call here (QoS 1 10→10, --trace-gc).
    const plain = this.#plainDeliveries;
    for (let i = 0; i < plain.length; i++) plain[i] = undefined;
    const count = this.#matched;
    if (count > 1) shareFrame(message);
    const targets = this.#matchedTargets;
    const deliveries = this.#matchedDeliveries;
    for (let i = 0; i < count; i++) {
      const target = targets[i]!;
      const delivery = deliveries[i]!;
      // Not kept past this pass: the lists are reused, their entries must not pin messages.
      targets[i] = undefined;
      deliveries[i] = undefined;
      deliver(target, delivery);
    }
    return count;
  }

  /**
   * Whether routing `message` could reach a subscriber for which `test` holds (any member of a matching
   * shared group counts). Changes nothing: no shared group takes a turn.
   */
  reaches(message: Message, test: (session: Session, grantedQos: QoS) => boolean): boolean {
    let found = false;
    const check = (subscription: SessionSubscription, target: T) => {
      if (!found && test(target.session, subscription.qos)) found = true;
    };
    this.#trie.match(message.topic, {
      subscriber: (target, subscription) => check(subscription, target),
      sharedGroup: (group) => group.members.forEach(check),
    });
    return found;
  }

  readonly #visitor = {
    subscriber: (target: T, subscription: SessionSubscription) => {
      if (target.session.persistent ? this.#scope.persistent : this.#scope.transient) {
        this.#collect(target, subscription);
      }
    },
    sharedGroup: (group: SharedGroup<T, SessionSubscription>) => {
      if (!this.#scope.shared) return;
      const chosen = this.#pickMember(group, this.#message!.topic);
      if (chosen) this.#collect(chosen, group.members.get(chosen)!, true);
    },
  };

  /**
   * Adds the session's delivery, or merges into the one it got from another of its subscriptions: the
   * session's mark says whether this pass reached it already and where its delivery sits.
   */
  #collect(target: T, subscription: SessionSubscription, shared = false): void {
    const session = target.session;
    const message = this.#message!;
    if (!shared && subscription.noLocal && session.clientId === message.publisherId) return; // [MQTT-3.8.3-3]
    const retain = subscription.retainAsPublished && message.retain;
    const id = subscription.subscriptionIdentifier;
    if (session.routePass !== this.#pass) {
      session.routePass = this.#pass;
      session.routeIndex = this.#matched++;
      this.#matchedTargets[session.routeIndex] = target;
      this.#matchedDeliveries[session.routeIndex] = id === undefined && !session.persistent
        ? this.#plainDeliveries[plainSlot(subscription.qos, retain)] ??= newDelivery(
          message,
          subscription.qos,
          retain,
        )
        : newDelivery(message, subscription.qos, retain, id === undefined ? undefined : [id]);
      return;
    }
    let existing = this.#matchedDeliveries[session.routeIndex]!;
    if (this.#plainDeliveries.includes(existing)) {
      // A second subscription of the session changes its delivery: one of its own.
      existing = this.#matchedDeliveries[session.routeIndex] = newDelivery(
        message,
        existing.grantedQos,
        existing.retain,
      );
    }
    if (subscription.qos > existing.grantedQos) existing.grantedQos = subscription.qos as QoS;
    existing.retain ||= retain;
    if (id !== undefined) (existing.subscriptionIdentifiers ??= []).push(id);
  }

  /**
   * One member per message: the next online member in turn that may receive the topic (a member the ACL
   * withholds it from is skipped, not handed a message it would drop), else any offline member.
   */
  #pickMember(group: SharedGroup<T, SessionSubscription>, topic: string): T | undefined {
    const members = group.memberKeys;
    if (members.length === 0) return undefined;
    const start = this.strategy === "random"
      ? Math.floor(this.random() * members.length)
      : group.cursor % members.length;
    let offline: T | undefined;
    for (let i = 0; i < members.length; i++) {
      const index = (start + i) % members.length;
      const member = members[index];
      const attachment = member.session.attachment;
      if (!attachment) offline ??= member;
      else if (attachment.permissions?.canReceive?.(topic) !== false) {
        group.cursor = index + 1;
        return member;
      }
    }
    group.cursor = start + 1;
    return offline;
  }
}

/** Where {@link Router}'s shared delivery for a subscription's QoS and RETAIN flag is kept. */
function plainSlot(grantedQos: QoS, retain: boolean): number {
  return grantedQos * 2 + (retain ? 1 : 0);
}

/** A routed delivery; every one has the same fields, so the hot paths that read them see one shape. */
function newDelivery(
  message: Message,
  grantedQos: QoS,
  retain: boolean,
  subscriptionIdentifiers?: number[],
): Delivery {
  return { message, grantedQos, retain, subscriptionIdentifiers, storedRef: undefined };
}
