import type { QoS } from "../codec/types.ts";
import type { Session } from "../session/session.ts";
import type { Delivery, Message, SessionSubscription } from "../session/types.ts";
import { type SharedGroup, SubscriptionTrie } from "../topic/mod.ts";

interface Subscriber {
  session: Session;
  subscription: SessionSubscription;
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
export class Router {
  readonly #trie = new SubscriptionTrie<Subscriber>();
  /** Reused per message: one delivery per client, in the order the clients were reached. */
  readonly #matchedSessions: (Session | undefined)[] = [];
  readonly #matchedDeliveries: (Delivery | undefined)[] = [];
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

  add(session: Session, subscription: SessionSubscription): void {
    const subscriber = { session, subscription };
    if (subscription.shared) {
      this.#trie.add(subscription.shared.filter, session.clientId, subscriber, subscription.shared.group);
    } else {
      this.#trie.add(subscription.topicFilter, session.clientId, subscriber);
    }
    this.onChange?.({ kind: "added", clientId: session.clientId, subscription });
  }

  remove(session: Session, subscription: SessionSubscription): void {
    const removed = subscription.shared
      ? this.#trie.remove(subscription.shared.filter, session.clientId, subscription.shared.group)
      : this.#trie.remove(subscription.topicFilter, session.clientId);
    if (!removed) return;
    this.onChange?.({ kind: "removed", clientId: session.clientId, subscription });
  }

  /**
   * Calls `deliver` once per client the message reaches, with that client's delivery (a fresh object the
   * session may keep). Returns how many clients it reached.
   */
  route(
    message: Message,
    deliver: (session: Session, delivery: Delivery) => void,
    scope: RouteScope = EVERYONE,
  ): number {
    this.#message = message;
    this.#scope = scope;
    this.#pass = ++lastPass;
    this.#matched = 0;
    this.#trie.match(message.topic, this.#visitor);
    this.#message = undefined;
    const count = this.#matched;
    const sessions = this.#matchedSessions;
    const deliveries = this.#matchedDeliveries;
    for (let i = 0; i < count; i++) {
      const session = sessions[i]!;
      const delivery = deliveries[i]!;
      // Not kept past this pass: the lists are reused, their entries must not pin messages.
      sessions[i] = undefined;
      deliveries[i] = undefined;
      deliver(session, delivery);
    }
    return count;
  }

  /**
   * Whether routing `message` could reach a subscriber for which `test` holds (any member of a matching
   * shared group counts). Changes nothing: no shared group takes a turn.
   */
  reaches(message: Message, test: (session: Session, grantedQos: QoS) => boolean): boolean {
    let found = false;
    const check = ({ session, subscription }: Subscriber) => {
      if (!found && test(session, subscription.qos)) found = true;
    };
    this.#trie.match(message.topic, {
      subscriber: (_clientId, subscriber) => check(subscriber),
      sharedGroup: (group) => group.members.forEach(check),
    });
    return found;
  }

  readonly #visitor = {
    subscriber: (_clientId: string, subscriber: Subscriber) => {
      if (subscriber.session.persistent ? this.#scope.persistent : this.#scope.transient) {
        this.#collect(subscriber);
      }
    },
    sharedGroup: (group: SharedGroup<Subscriber>) => {
      if (!this.#scope.shared) return;
      const chosen = this.#pickMember(group, this.#message!.topic);
      if (chosen) this.#collect(chosen, true);
    },
  };

  /**
   * Adds the session's delivery, or merges into the one it got from another of its subscriptions: the
   * session's mark says whether this pass reached it already and where its delivery sits.
   */
  #collect({ session, subscription }: Subscriber, shared = false): void {
    const message = this.#message!;
    if (!shared && subscription.noLocal && session.clientId === message.publisherId) return; // [MQTT-3.8.3-3]
    const retain = subscription.retainAsPublished && message.retain;
    const id = subscription.subscriptionIdentifier;
    if (session.routePass !== this.#pass) {
      session.routePass = this.#pass;
      session.routeIndex = this.#matched++;
      this.#matchedSessions[session.routeIndex] = session;
      this.#matchedDeliveries[session.routeIndex] = {
        message,
        grantedQos: subscription.qos,
        retain,
        subscriptionIdentifiers: id === undefined ? undefined : [id],
        storedRef: undefined,
        // The session's fields (see Delivery.qos), present from the start: set later, they would change
        // the object's shape on the hot path.
        qos: undefined,
        size: undefined,
        inflightStage: undefined,
      };
      return;
    }
    const existing = this.#matchedDeliveries[session.routeIndex]!;
    if (subscription.qos > existing.grantedQos) existing.grantedQos = subscription.qos as QoS;
    existing.retain ||= retain;
    if (id !== undefined) (existing.subscriptionIdentifiers ??= []).push(id);
  }

  /**
   * One member per message: the next online member in turn that may receive the topic (a member the ACL
   * withholds it from is skipped, not handed a message it would drop), else any offline member.
   */
  #pickMember(group: SharedGroup<Subscriber>, topic: string): Subscriber | undefined {
    const ids = group.memberIds;
    if (ids.length === 0) return undefined;
    const start = this.strategy === "random"
      ? Math.floor(this.random() * ids.length)
      : group.cursor % ids.length;
    let offline: Subscriber | undefined;
    for (let i = 0; i < ids.length; i++) {
      const index = (start + i) % ids.length;
      const member = group.members.get(ids[index])!;
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
