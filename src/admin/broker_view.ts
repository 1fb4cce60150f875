/**
 * The one adapter between the admin API and the broker of today: {@link AdminBrokerView} implemented from
 * the Broker's and the ConnectionManager's public methods and the configuration. When the broker is split
 * into services, this file changes and the rest of src/admin/ does not.
 */
import type { Broker, RetainedEntry } from "../broker/mod.ts";
import type { ClusterNode } from "../cluster/mod.ts";
import type { Config } from "../config/mod.ts";
import { type ClientConnectionInfo, type ConnectionManager, protocolName } from "../connection/mod.ts";
import type { TrafficMetrics } from "../observe/metrics.ts";
import type { Session as BrokerSession } from "../session/mod.ts";
import type { Message } from "../session/types.ts";
import { parseSharedFilter, topicMatches, validateTopicName } from "../topic/mod.ts";
import type {
  Client,
  ClientDetail,
  ClusterStatus,
  Limits,
  Listener,
  Page,
  PublishRequest,
  ReloadResult,
  RetainedMessage,
  Session,
  Stats,
  Subscription,
} from "./schemas.ts";
import { type AdminBrokerView, AdminRefusal } from "./view.ts";

/** What the composition root hands the adapter. */
export interface BrokerViewSources {
  broker: Broker;
  connections: ConnectionManager;
  /** The broker's own traffic metrics (store flush figures). */
  traffic: TrafficMetrics;
  config: Config;
  version: string;
  startedAt: number;
  /** The bound listeners with their connection counts. */
  listeners: () => { name: string; hostname: string; port: number; open: number; total: number }[];
  reload: () => Promise<ReloadResult>;
  /** The cluster node this broker is the replica of, when clustered. */
  cluster?: ClusterNode;
}

const PREVIEW_CHARS = 1024;
const NEVER_EXPIRES = 0xffffffff;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Builds the admin view of a running broker. */
export function createBrokerView(sources: BrokerViewSources): AdminBrokerView {
  const { broker, connections, config } = sources;
  const now = () => Date.now();

  const sessionOf = (session: BrokerSession, connected: boolean): Session => ({
    clientId: session.clientId,
    connected,
    expiryInterval: session.expiryInterval,
    subscriptions: session.subscriptionCount,
    inflight: session.inflightCount,
    queued: session.queueLength,
    queuedBytes: session.queuedBytes,
    awaitingRelease: session.awaitingRelease.size,
  });

  const clientOf = (info: ClientConnectionInfo): Client => {
    const session = broker.session(info.clientId);
    return {
      clientId: info.clientId,
      username: info.username ?? null,
      remoteAddress: info.remoteAddress,
      listener: info.listener,
      protocol: protocolName(info.protocolVersion),
      connectedAt: new Date(info.connectedAt).toISOString(),
      keepAlive: info.keepAlive,
      cleanStart: info.cleanStart,
      subscriptions: session?.subscriptionCount ?? 0,
      inflight: session?.inflightCount ?? 0,
      queued: session?.queueLength ?? 0,
      bytesReceived: info.bytesReceived,
      bytesSent: info.bytesSent,
    };
  };

  const subscriptionsOf = function* (session: BrokerSession): Generator<Subscription> {
    for (const subscription of session.subscriptions()) {
      yield {
        clientId: session.clientId,
        topicFilter: subscription.topicFilter,
        qos: subscription.qos,
        noLocal: subscription.noLocal,
        retainAsPublished: subscription.retainAsPublished,
        retainHandling: subscription.retainHandling,
        subscriptionIdentifier: subscription.subscriptionIdentifier ?? null,
        shareGroup: parseSharedFilter(subscription.topicFilter, Number.MAX_SAFE_INTEGER)?.group ?? null,
      };
    }
  };

  const connectedIds = () => new Set([...connections.clients()].map((client) => client.clientId));

  return {
    clients(query) {
      const needle = query.clientId;
      return pageOf(
        connections.clients(),
        (client) => client.clientId,
        query,
        (client) =>
          (needle === undefined || client.clientId.includes(needle)) &&
          (query.username === undefined || client.username === query.username) &&
          (query.listener === undefined || client.listener === query.listener) &&
          (query.protocol === undefined || protocolName(client.protocolVersion) === query.protocol),
        clientOf,
      );
    },

    client(clientId) {
      const info = [...connections.clients()].find((client) => client.clientId === clientId);
      const session = broker.session(clientId);
      if (!info || !session) return undefined;
      const detail: ClientDetail = {
        client: clientOf(info),
        session: sessionOf(session, true),
        subscriptions: [...subscriptionsOf(session)].sort((a, b) => compare(a.topicFilter, b.topicFilter)),
      };
      return detail;
    },

    kick: (clientId, reasonCode, reason) => connections.kick(clientId, reasonCode, reason),

    sessions(query) {
      const online = connectedIds();
      const needle = query.clientId;
      return pageOf(
        broker.sessions(),
        (session) => session.clientId,
        query,
        (session) =>
          (needle === undefined || session.clientId.includes(needle)) &&
          (query.connected === undefined || online.has(session.clientId) === query.connected),
        (session) => sessionOf(session, online.has(session.clientId)),
      );
    },

    deleteSession(clientId) {
      const outcome = broker.discardSession(clientId);
      if (outcome === "unknown") throw new AdminRefusal(404, `no session for client ${clientId}`);
      if (outcome === "connected") {
        throw new AdminRefusal(409, `client ${clientId} is connected: kick it first`);
      }
    },

    subscriptions(query) {
      const sessions = query.clientId === undefined
        ? broker.sessions()
        : [broker.session(query.clientId)].filter((session) => session !== undefined);
      const all = (function* () {
        for (const session of sessions) yield* subscriptionsOf(session);
      })();
      const key = (subscription: Subscription) => `${subscription.clientId}\u0000${subscription.topicFilter}`;
      return pageOf(
        all,
        key,
        query,
        (subscription) =>
          (query.filter === undefined || subscription.topicFilter === query.filter) &&
          (query.topic === undefined || reaches(subscription.topicFilter, query.topic)),
        (s) => s,
      );
    },

    async retained(query) {
      let entries: RetainedEntry[];
      try {
        entries = broker.retained.match(query.filter, now());
      } catch {
        throw new AdminRefusal(422, "not a valid topic filter", "query.filter");
      }
      const page = pageOf(entries, (entry) => entry.topic, query, () => true, (entry) => entry);
      const messages = await broker.retained.read(page.data);
      // One replaced or deleted since it was matched is shown as matched, without a preview.
      return { ...page, data: page.data.map((entry, i) => retainedOf(entry, messages[i]?.payload)) };
    },

    async deleteRetained(topic) {
      const deleted = broker.deleteRetained(topic);
      await broker.flush();
      return deleted;
    },

    async publish(request) {
      const message = messageOf(request, config);
      const reached = broker.publish(message);
      if (message.qos > 0 || message.retain) await broker.flush();
      return reached;
    },

    listeners() {
      const running = sources.listeners();
      return config.listeners.flatMap((listener): Listener[] => {
        const bound = running.find((candidate) => candidate.name === listener.name);
        if (!bound) return [];
        const web = listener.type === "ws" || listener.type === "wss";
        return [{
          name: listener.name,
          type: listener.type,
          host: bound.hostname,
          port: bound.port,
          path: web ? listener.path : null,
          clientCertificates: listener.caFile !== undefined,
          connections: bound.open,
          connectionsTotal: bound.total,
          maxConnections: listener.maxConnections,
          io: listener.io,
        }];
      });
    },

    limits() {
      const limits: Limits = {};
      for (const [section, values] of [["mqtt", config.mqtt], ["shutdown", config.shutdown]] as const) {
        for (const [name, value] of Object.entries(values)) {
          if (value === undefined) continue;
          limits[`${section}.${name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)}`] = value;
        }
      }
      return limits;
    },

    stats(): Stats {
      const drops = broker.stats.drops;
      const totals = broker.sessionTotals();
      const traffic = connections.traffic();
      const flushes = sources.traffic.storeFlushSeconds.get();
      const connected = broker.stats.connectedClients;
      return {
        version: sources.version,
        uptimeSeconds: Math.floor((now() - sources.startedAt) / 1000),
        clientsConnected: connected,
        clientsTotal: broker.sessionCount,
        clientsDisconnected: Math.max(0, broker.sessionCount - connected),
        messagesReceived: broker.stats.messagesReceived,
        messagesSent: broker.stats.messagesSent,
        messagesDropped: Object.values(drops).reduce((sum, count) => sum + count, 0),
        drops: { ...drops },
        bytesReceived: traffic.bytesReceived,
        bytesSent: traffic.bytesSent,
        subscriptions: broker.subscriptionCount,
        retained: broker.retained.size,
        inflight: totals.inflight,
        queued: totals.queued,
        storeFlushes: flushes.count,
        storeFlushSeconds: flushes.sum,
      };
    },

    cluster(): ClusterStatus {
      if (!sources.cluster) {
        return { enabled: false, nodeId: null, up: true, detail: "single node", nodes: [], log: null };
      }
      return { enabled: true, ...sources.cluster.status() };
    },

    reload: () => sources.reload(),
  };
}

/** Whether a message on `topic` reaches a subscription with this filter ($share/<group>/ stripped). */
function reaches(topicFilter: string, topic: string): boolean {
  const shared = /^\$share\/[^/]+\/(.*)$/.exec(topicFilter);
  return topicMatches(shared ? shared[1] : topicFilter, topic);
}

function retainedOf(entry: RetainedEntry, payload: Uint8Array | undefined): RetainedMessage {
  let text: string | null = null;
  try {
    if (payload) text = strictUtf8.decode(payload).slice(0, PREVIEW_CHARS);
  } catch { /* binary: no preview */ }
  return {
    topic: entry.topic,
    qos: entry.qos,
    payloadBytes: entry.payloadBytes,
    payloadText: text,
    expiresAt: entry.expiresAt === undefined ? null : new Date(entry.expiresAt).toISOString(),
  };
}

/** Checks a publish request against what the broker allows MQTT clients, and builds the message. */
function messageOf(request: PublishRequest, config: Config): Message {
  const { topic } = request;
  if (topic.startsWith("$")) {
    throw new AdminRefusal(422, "topics starting with $ belong to the broker", "body.topic");
  }
  try {
    validateTopicName(topic, config.mqtt.maxTopicLevels);
  } catch (error) {
    throw new AdminRefusal(422, error instanceof Error ? error.message : String(error), "body.topic");
  }
  if (request.qos > config.mqtt.maxQos) {
    throw new AdminRefusal(422, `QoS above mqtt.max_qos = ${config.mqtt.maxQos}`, "body.qos");
  }
  if (request.retain && !config.mqtt.retainAvailable) {
    throw new AdminRefusal(422, "retained messages are turned off (mqtt.retain_available)", "body.retain");
  }
  let payload: Uint8Array;
  if (request.encoding === "base64") {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(request.payload) || request.payload.length % 4 !== 0) {
      throw new AdminRefusal(422, "not base64", "body.payload");
    }
    payload = Uint8Array.from(atob(request.payload), (char) => char.charCodeAt(0));
  } else {
    payload = new TextEncoder().encode(request.payload);
  }
  if (payload.byteLength + topic.length > config.mqtt.maxPacketSize) {
    throw new AdminRefusal(
      422,
      `larger than mqtt.max_packet_size = ${config.mqtt.maxPacketSize}`,
      "body.payload",
    );
  }
  const expiry = request.messageExpiryInterval;
  return {
    topic,
    payload,
    qos: request.qos,
    retain: request.retain,
    properties: {
      ...(request.encoding === "utf8" ? { payloadFormatIndicator: 1 } : {}),
      ...(request.contentType === undefined ? {} : { contentType: request.contentType }),
      ...(expiry === undefined ? {} : { messageExpiryInterval: expiry }),
      ...(request.userProperties === undefined ? {} : { userProperties: request.userProperties }),
    },
    publisherId: "",
    expiresAt: expiry === undefined || expiry === NEVER_EXPIRES ? undefined : Date.now() + expiry * 1000,
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * One page of `items` in key order after the cursor, without sorting everything: a sorted buffer of at
 * most limit + 1 items is kept while the items stream past, so a page costs O(n log limit).
 */
function pageOf<T, R>(
  items: Iterable<T>,
  key: (item: T) => string,
  query: { limit: number; cursor?: string },
  keep: (item: T) => boolean,
  render: (item: T) => R,
): Page<R> {
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const size = query.limit + 1;
  const buffer: { key: string; item: T }[] = [];
  for (const item of items) {
    const itemKey = key(item);
    if (after !== undefined && itemKey <= after) continue;
    if (buffer.length === size && itemKey >= buffer[size - 1].key) continue;
    if (!keep(item)) continue;
    let low = 0;
    let high = buffer.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (buffer[middle].key < itemKey) low = middle + 1;
      else high = middle;
    }
    buffer.splice(low, 0, { key: itemKey, item });
    if (buffer.length > size) buffer.pop();
  }
  const more = buffer.length > query.limit;
  const shown = buffer.slice(0, query.limit);
  return {
    data: shown.map((entry) => render(entry.item)),
    nextCursor: more ? encodeCursor(shown[shown.length - 1].key) : null,
  };
}

function encodeCursor(key: string): string {
  const bytes = new TextEncoder().encode(key);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string): string {
  try {
    const base64 = cursor.replaceAll("-", "+").replaceAll("_", "/");
    const bytes = Uint8Array.from(
      atob(base64 + "=".repeat((4 - base64.length % 4) % 4)),
      (c) => c.charCodeAt(0),
    );
    return strictUtf8.decode(bytes);
  } catch {
    throw new AdminRefusal(422, "not a cursor this API returned", "query.cursor");
  }
}
