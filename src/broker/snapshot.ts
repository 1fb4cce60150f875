/**
 * A broker's whole state as data, for a node that joins a cluster (or lost its disk) to start from what
 * another node has: every session (connected or not, with its queue and in-flight messages), retained
 * messages and armed wills. Taken and installed where the request lands in the cluster log, so the
 * joining node continues from exactly that point.
 */
import type { StoredWill } from "../storage/port.ts";
import { withoutFrame } from "../session/message.ts";
import type { SharedSessionState } from "../session/outbound.ts";
import type { Attachment, Delivery, Message, Permissions, SessionState } from "../session/types.ts";
import type { Clock } from "./clock.ts";
import type { Persistence } from "./persistence.ts";
import type { SessionRegistry } from "./registry.ts";
import { SessionEntry } from "./session_entry.ts";
import type { RetainedService } from "./retained.ts";
import type { Router } from "./router.ts";
import type { WillService } from "./wills.ts";

/** The broker's parts a snapshot reads and writes. */
export interface BrokerParts {
  registry: SessionRegistry;
  router: Router<SessionEntry>;
  retained: RetainedService;
  wills: WillService;
  persistence: Persistence;
  shared: SharedSessionState;
  clock: Clock;
  permissionsFor(clientId: string, owner: string | undefined): Permissions | undefined;
}

/** One session and what the registry knows about its client. */
export interface SessionSnapshot {
  state: SessionState;
  persistent: boolean;
  epoch: number;
  owner?: string;
  /** Where the client is connected (node and run), while it is. */
  holder?: string;
  attachment?: Omit<Attachment, "permissions">;
  disconnectedAt?: number;
}

/** One part of a broker's state, as a node streams it to a joining node. */
export type BrokerStatePart =
  | { kind: "session"; session: SessionSnapshot }
  | { kind: "retained"; messages: Message[] }
  | { kind: "wills"; wills: StoredWill[] };

/** Wills per part: a will carries a payload, so a part of them stays small. */
const WILLS_PER_PART = 256;

/**
 * Everything `broker` holds, a part at a time: one session per part (its paged-out queue read back from
 * storage, and let go again before the next), retained messages and wills in batches. The caller encodes
 * each part before it asks for the next: only then is a session paged out again.
 */
export async function* exportState(broker: BrokerParts): AsyncGenerator<BrokerStatePart> {
  for (const entry of [...broker.registry.values()]) {
    if (entry.discarded) continue; // ended while earlier parts were being sent
    const session = entry.session;
    const pagedOut = session.pagedOut;
    if (session.storedOnly) await broker.registry.pageInAll(entry);
    try {
      // how the client connected, while it is: the session's attachment (entry.attached)
      const { permissions: _, ...attachment } = session.attachment ?? {};
      yield {
        kind: "session",
        session: {
          // A session paged in only for this is paged out again below: nothing can free its payloads meanwhile.
          state: withoutStoredRefs(session.toRecord(), !pagedOut),
          persistent: session.persistent,
          epoch: entry.epoch,
          owner: entry.owner,
          holder: entry.attached ? entry.holder : undefined,
          attachment: entry.attached ? attachment as Omit<Attachment, "permissions"> : undefined,
          disconnectedAt: entry.disconnectedAt,
        },
      };
    } finally {
      if (pagedOut && !entry.discarded) broker.registry.pageOut(entry);
    }
  }
  for await (const messages of broker.retained.readInBatches()) yield { kind: "retained", messages };
  const wills = broker.wills.exportAll();
  for (let start = 0; start < wills.length; start += WILLS_PER_PART) {
    yield { kind: "wills", wills: wills.slice(start, start + WILLS_PER_PART) };
  }
}

/**
 * The state with copies of its deliveries that do not name this node's stored messages: the node that
 * imports it stores them again under its own refs.
 */
function withoutStoredRefs(state: SessionState, copyOwnPayloads: boolean): SessionState {
  return {
    ...state,
    inflight: state.inflight.map((entry) => ({
      ...entry,
      delivery: exported(entry.delivery, copyOwnPayloads),
    })),
    queue: state.queue.map((entry) => ({ ...entry, delivery: exported(entry.delivery, copyOwnPayloads) })),
  };
}

/**
 * A delivery for the snapshot: no stored ref; its message without its frame, an offset into this node's
 * decoder memory (serialized, it would carry the whole slab the frame sits in); and a payload of its own
 * where this node's session frees its payload once acknowledged (Delivery.ownsPayload), which may happen
 * while the snapshot is still being built.
 */
function exported(delivery: Delivery, copyOwnPayload: boolean): Delivery {
  const message = delivery.message;
  return {
    ...delivery,
    message: withoutFrame(
      message,
      copyOwnPayload && delivery.ownsPayload ? message.payload.slice() : message.payload,
    ),
    storedRef: undefined,
    ownsPayload: undefined,
  };
}

/** Installs one part of another node's state into a broker that holds only the parts before it. */
export function importPart(broker: BrokerParts, part: BrokerStatePart): void {
  switch (part.kind) {
    case "session":
      return importSession(broker, part.session);
    case "retained":
      for (const message of part.messages) broker.retained.set(message);
      return;
    case "wills":
      return broker.wills.importAll(part.wills);
  }
}

function importSession(broker: BrokerParts, snapshot: SessionSnapshot): void {
  const { registry, router } = broker;
  const { clientId } = snapshot.state;
  const entry = new SessionEntry(
    clientId,
    broker.shared,
    snapshot.epoch,
    snapshot.owner,
    snapshot.disconnectedAt,
  );
  const session = entry.session;
  session.load(snapshot.state);
  session.persistent = snapshot.persistent;
  registry.add(entry);
  for (const subscription of session.subscriptions()) {
    router.add(entry, subscription);
    broker.persistence.subscribed(session, subscription);
  }
  session.recordAll();
  if (snapshot.holder !== undefined && snapshot.attachment) {
    const permissions = broker.permissionsFor(session.clientId, snapshot.owner);
    registry.attach(
      entry,
      permissions ? { ...snapshot.attachment, permissions } : snapshot.attachment,
      snapshot.holder,
    );
  } else if (session.persistent) {
    broker.persistence.saveSession(session, {
      epoch: entry.epoch,
      owner: entry.owner,
      disconnectedAt: entry.disconnectedAt,
    });
    entry.disconnectedAt ??= broker.clock.now();
    registry.armExpiry(entry);
  }
  broker.persistence.sessionChanged(session);
  if (!entry.attached && session.persistent) session.pageOut();
}

/**
 * Empties the broker, memory and storage, without publishing anything (no will goes out): what a join
 * that did not finish left behind, before the node asks for the state again.
 */
export function clearState(broker: BrokerParts): void {
  broker.registry.forgetAll();
  broker.retained.clear();
  broker.wills.forgetAll();
}
