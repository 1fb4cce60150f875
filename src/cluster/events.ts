/**
 * The events nodes append to the cluster log, and their binary form. Every node applies every event in
 * log order, so whatever an event decides (who holds a client id, a persistent session's state, retained
 * messages, wills) is decided identically everywhere.
 */
import { Cursor } from "../codec/cursor.ts";
import { decodeProperties, emitProperties, hasProperties, PropertyScope } from "../codec/properties.ts";
import { Sink } from "../codec/sink.ts";
import type { Properties, ProtocolVersion, QoS, Will } from "../codec/types.ts";
import type { Attachment, Message, MessageOrigin, SessionSubscription } from "../session/types.ts";
import { WireError, WireReader, WireWriter } from "./wire.ts";

/** The connection facts of a claim that every node needs to run the session as its holder would. */
export type AttachmentData = Omit<Attachment, "permissions">;

/** A client id claimed by a connection on `node`; its place in the log becomes the claim's epoch. */
export interface ClaimEvent {
  kind: "claim";
  node: string;
  /** The claiming node's own number for the pending CONNECT, to find it again when the claim is applied. */
  request: number;
  clientId: string;
  cleanStart: boolean;
  sessionExpiryInterval: number;
  owner?: string;
  /** The client's IP address, for the per-address cap on persistent sessions. */
  address?: string;
  will?: Will;
  attachment: AttachmentData;
  /** The claiming node's run: a claim of an earlier run of this node has no pending CONNECT to answer. */
  run: number;
}

/** A packet from the client of a persistent session, applied to every node's copy of the session. */
export interface PacketEvent {
  kind: "packet";
  clientId: string;
  epoch: number;
  version: ProtocolVersion;
  frame: Uint8Array;
}

/** The connection of `clientId` (at `epoch`) ended. */
export interface LeaveEvent {
  kind: "leave";
  clientId: string;
  epoch: number;
  publishWill: boolean;
  sessionExpiryInterval?: number;
}

/**
 * A message published by a transient session (or the broker), stamped with its origin: the node, its run
 * and its number in that run.
 */
export interface PublishEvent {
  kind: "publish";
  message: Message & { origin: MessageOrigin };
}

/** A session timer came due on some node; it takes effect where it lands in the log. */
export interface TimerEvent {
  kind: "timer";
  timer: "expire" | "will";
  clientId: string;
  epoch: number;
}

/** A transient session joins (or leaves) a `$share` group; membership takes effect here on every node. */
export interface ShareEvent {
  kind: "share";
  clientId: string;
  epoch: number;
  subscription: SessionSubscription;
  added: boolean;
}

/**
 * A node with no state (new, or its disk lost) asks for the others' state as of this place in the log.
 * `attempt` counts its requests in this run: it asks again when no answer came, the node answering died
 * half-way, or this node could not store a piece.
 */
export interface SnapshotRequestEvent {
  kind: "snapshotRequest";
  node: string;
  run: number;
  attempt: number;
}

/**
 * One piece of the state a node streams for the snapshot request (`node`, `run`, `attempt`): pieces are
 * numbered from 0, and `last` marks the end. An answer that starts again from 0 replaces what came before.
 */
export interface SnapshotChunkEvent {
  kind: "snapshotChunk";
  node: string;
  run: number;
  attempt: number;
  /** Who answers (node and run): a second answer to the same request is ignored. */
  from: string;
  fromRun: number;
  index: number;
  last: boolean;
  data: Uint8Array;
}

/** `node` is alive (in run `run`). */
export interface HeartbeatEvent {
  kind: "heartbeat";
  node: string;
  run: number;
}

/**
 * `node`'s run `run` is declared gone: heard from last at heartbeat `lastBeat` (or never). Applied only if no
 * later heartbeat of that run came first; then every client it held is disconnected abnormally.
 */
export interface NodeDownEvent {
  kind: "nodeDown";
  node: string;
  run: number;
  lastBeat: number;
}

export type ClusterEvent =
  | ClaimEvent
  | PacketEvent
  | LeaveEvent
  | PublishEvent
  | TimerEvent
  | ShareEvent
  | SnapshotRequestEvent
  | SnapshotChunkEvent
  | HeartbeatEvent
  | NodeDownEvent;

/** An event with the time (ms since the epoch) its node appended it, which every node then uses as "now". */
export interface Stamped {
  at: number;
  event: ClusterEvent;
}

const KINDS: ClusterEvent["kind"][] = [
  "claim",
  "packet",
  "leave",
  "publish",
  "timer",
  "heartbeat",
  "nodeDown",
  "share",
  "snapshotRequest",
  "snapshotChunk",
];
/** 2: messages carry their origin. */
const FORMAT_VERSION = 2;
const MESSAGE_PROPERTIES = PropertyScope.publish | PropertyScope.will;

/**
 * One writer for every event (encoding never nests), the event copied out of it: a node encodes one per
 * message it forwards, and a writer of its own each time was a buffer, a view and a DataView per message.
 */
let writer = new WireWriter();
/** A writer grown past this (by a snapshot chunk) is let go rather than kept. */
const KEPT_WRITER_BYTES = 64 * 1024;

export function encodeEvent(at: number, event: ClusterEvent): Uint8Array {
  const w = writer.reset().byte(FORMAT_VERSION).byte(KINDS.indexOf(event.kind)).float(at);
  switch (event.kind) {
    case "claim":
      w.string(event.node).uint(event.request).string(event.clientId).bool(event.cleanStart)
        .uint(event.sessionExpiryInterval).optional(event.owner, (owner) => w.string(owner))
        .optional(event.address, (address) => w.string(address))
        .optional(event.will, (will) => writeWill(w, will)).float(event.run);
      writeAttachment(w, event.attachment);
      break;
    case "packet":
      w.string(event.clientId).float(event.epoch).byte(event.version).bytesField(event.frame);
      break;
    case "leave":
      w.string(event.clientId).float(event.epoch).bool(event.publishWill)
        .optional(event.sessionExpiryInterval, (expiry) => w.uint(expiry));
      break;
    case "publish":
      writeMessage(w, event.message);
      break;
    case "timer":
      w.byte(event.timer === "expire" ? 0 : 1).string(event.clientId).float(event.epoch);
      break;
    case "heartbeat":
      w.string(event.node).float(event.run);
      break;
    case "snapshotRequest":
      w.string(event.node).float(event.run).uint(event.attempt);
      break;
    case "snapshotChunk":
      w.string(event.node).float(event.run).uint(event.attempt).string(event.from).float(event.fromRun)
        .uint(event.index).bool(event.last).bytesField(event.data);
      break;
    case "share": {
      const s = event.subscription;
      w.string(event.clientId).float(event.epoch).bool(event.added).string(s.topicFilter).byte(s.qos)
        .bool(s.noLocal).bool(s.retainAsPublished).byte(s.retainHandling)
        .optional(s.subscriptionIdentifier, (id) => w.uint(id));
      break;
    }
    case "nodeDown":
      w.string(event.node).float(event.run).float(event.lastBeat);
      break;
  }
  const bytes = w.bytes().slice();
  if (bytes.byteLength > KEPT_WRITER_BYTES) writer = new WireWriter();
  return bytes;
}

/** Decodes one event; throws WireError for an entry this code cannot read. Byte fields are views of `bytes`. */
export function decodeEvent(bytes: Uint8Array): Stamped {
  const r = new WireReader(bytes);
  const version = r.byte();
  if (version !== FORMAT_VERSION) throw new WireError(`unknown event format ${version}`);
  const kind = KINDS[r.byte()];
  const at = r.float();
  let event: ClusterEvent;
  switch (kind) {
    case "claim":
      event = {
        kind,
        node: r.string(),
        request: r.uint(),
        clientId: r.string(),
        cleanStart: r.bool(),
        sessionExpiryInterval: r.uint(),
        owner: r.optional(() => r.string()),
        address: r.optional(() => r.string()),
        will: r.optional(() => readWill(r)),
        run: r.float(),
        attachment: readAttachment(r),
      };
      break;
    case "packet":
      event = {
        kind,
        clientId: r.string(),
        epoch: r.float(),
        version: r.byte() as ProtocolVersion,
        frame: r.bytesField(),
      };
      break;
    case "leave":
      event = {
        kind,
        clientId: r.string(),
        epoch: r.float(),
        publishWill: r.bool(),
        sessionExpiryInterval: r.optional(() => r.uint()),
      };
      break;
    case "publish": {
      const message = readMessage(r);
      if (message.origin === undefined) throw new WireError("publish event without its origin");
      if (!r.done) throw new WireError(`${kind} event has trailing bytes`);
      return { at, event: { kind, message: message as PublishEvent["message"] } };
    }
    case "timer":
      event = { kind, timer: r.byte() === 0 ? "expire" : "will", clientId: r.string(), epoch: r.float() };
      break;
    case "heartbeat":
      event = { kind, node: r.string(), run: r.float() };
      break;
    case "snapshotRequest":
      event = { kind, node: r.string(), run: r.float(), attempt: r.uint() };
      break;
    case "snapshotChunk":
      event = {
        kind,
        node: r.string(),
        run: r.float(),
        attempt: r.uint(),
        from: r.string(),
        fromRun: r.float(),
        index: r.uint(),
        last: r.bool(),
        data: r.bytesField(),
      };
      break;
    case "share": {
      const clientId = r.string();
      const epoch = r.float();
      const added = r.bool();
      const topicFilter = r.string();
      const subscription: SessionSubscription = withoutUndefined({
        topicFilter,
        qos: r.byte() as QoS,
        noLocal: r.bool(),
        retainAsPublished: r.bool(),
        retainHandling: r.byte() as 0 | 1 | 2,
        subscriptionIdentifier: r.optional(() => r.uint()),
      });
      event = { kind, clientId, epoch, subscription, added };
      break;
    }
    case "nodeDown":
      event = { kind, node: r.string(), run: r.float(), lastBeat: r.float() };
      break;
    default:
      throw new WireError("unknown event kind");
  }
  if (!r.done) throw new WireError(`${kind} event has trailing bytes`);
  return { at, event: withoutUndefined(event) };
}

/** What a node needs of a publish event to tell whether it concerns it at all. */
export interface PublishSkim {
  at: number;
  topic: string;
  retain: boolean;
  origin: MessageOrigin;
}

const PUBLISH_KIND = KINDS.indexOf("publish");

/**
 * The topic, retain flag and origin of a publish event, read without decoding the rest (payload,
 * properties): most publishes reach no client on most nodes, and every node reads every one. Undefined
 * for any other event; throws WireError for a damaged entry.
 */
export function skimPublish(bytes: Uint8Array): PublishSkim | undefined {
  if (bytes.byteLength < 2 || bytes[0] !== FORMAT_VERSION || bytes[1] !== PUBLISH_KIND) return undefined;
  const r = new WireReader(bytes);
  r.byte();
  r.byte();
  const at = r.float();
  const topic = r.string();
  r.skipField(); // payload
  r.byte(); // qos
  const retain = r.bool();
  r.skipField(); // publisher id
  if (r.bool()) r.float(); // expiry
  if (!r.bool()) throw new WireError("publish event without its origin");
  const origin = { nodeId: r.string(), run: r.float(), sequence: r.uint() };
  return { at, topic, retain, origin };
}

/** Optional fields absent rather than undefined, so decoded events compare equal to the originals. */
function withoutUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) if (value[key] === undefined) delete value[key];
  return value;
}

function writeProperties(w: WireWriter, properties: Properties): void {
  // Most messages carry none: the bytes emitProperties writes for none (a zero property length), without
  // measuring and building them.
  if (!hasProperties(properties)) {
    w.uint(1).byte(0);
    return;
  }
  const measure = new Sink(undefined);
  emitProperties(measure, properties, MESSAGE_PROPERTIES);
  const sink = new Sink(new Uint8Array(measure.pos));
  emitProperties(sink, properties, MESSAGE_PROPERTIES);
  w.bytesField(sink.buf!);
}

function readProperties(r: WireReader): Properties {
  const bytes = r.bytesField();
  // Most messages carry none (a zero property length, or nothing): no cursor for them.
  if (bytes.byteLength === 0 || (bytes.byteLength === 1 && bytes[0] === 0)) return {};
  return decodeProperties(new Cursor(bytes, 0, bytes.byteLength), MESSAGE_PROPERTIES);
}

function writeMessage(w: WireWriter, message: Message): void {
  w.string(message.topic).bytesField(message.payload).byte(message.qos).bool(message.retain)
    .string(message.publisherId).optional(message.expiresAt, (at) => w.float(at))
    .optional(message.origin, (origin) => w.string(origin.nodeId).float(origin.run).uint(origin.sequence));
  writeProperties(w, message.properties);
}

function readMessage(r: WireReader): Message {
  // Absent fields are left out as it goes (every node decodes every message: no pass to delete them).
  const topic = r.string();
  const payload = r.bytesField();
  const qos = r.byte() as QoS;
  const retain = r.bool();
  const publisherId = r.string();
  const expiresAt = r.bool() ? r.float() : undefined;
  const origin = r.bool() ? { nodeId: r.string(), run: r.float(), sequence: r.uint() } : undefined;
  const properties = readProperties(r);
  if (expiresAt === undefined && origin !== undefined) {
    return { topic, payload, qos, retain, publisherId, origin, properties };
  }
  const message: Message = { topic, payload, qos, retain, publisherId, properties };
  if (expiresAt !== undefined) message.expiresAt = expiresAt;
  if (origin !== undefined) message.origin = origin;
  return message;
}

function writeWill(w: WireWriter, will: Will): void {
  w.string(will.topic).bytesField(will.payload).byte(will.qos).bool(will.retain);
  writeProperties(w, will.properties);
}

function readWill(r: WireReader): Will {
  return {
    topic: r.string(),
    payload: r.bytesField(),
    qos: r.byte() as QoS,
    retain: r.bool(),
    properties: readProperties(r),
  };
}

function writeAttachment(w: WireWriter, attachment: AttachmentData): void {
  w.byte(attachment.protocolVersion).uint(attachment.receiveMaximum)
    .optional(attachment.maximumPacketSize, (size) => w.uint(size)).uint(attachment.topicAliasMaximum)
    .uint(attachment.sessionExpiryInterval).bool(attachment.requestProblemInformation);
}

function readAttachment(r: WireReader): AttachmentData {
  return withoutUndefined({
    protocolVersion: r.byte() as ProtocolVersion,
    receiveMaximum: r.uint(),
    maximumPacketSize: r.optional(() => r.uint()),
    topicAliasMaximum: r.uint(),
    sessionExpiryInterval: r.uint(),
    requestProblemInformation: r.bool(),
  });
}
