/**
 * A broker's whole state as data, for a node that joins a cluster (or lost its disk) to start from what
 * another node has: every session (connected or not, with its queue and in-flight messages), retained
 * messages and armed wills. Taken and installed where the request lands in the cluster log, so the
 * joining node continues from exactly that point.
 */
import type { StoredWill } from "../storage/port.ts";
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

export interface BrokerState {
  sessions: SessionSnapshot[];
  retained: Message[];
  wills: StoredWill[];
}

/** Everything `broker` holds, reading paged-out queues back from storage. */
export async function exportState(broker: BrokerParts): Promise<BrokerState> {
  const sessions: SessionSnapshot[] = [];
  for (const entry of [...broker.registry.values()]) {
    const session = entry.session;
    const pagedOut = session.pagedOut;
    if (session.storedOnly) await broker.registry.pageInAll(entry);
    // how the client connected, while it is: the session's attachment (entry.attached)
    const { permissions: _, ...attachment } = session.attachment ?? {};
    sessions.push({
      // A session paged in only for this is paged out again below: nothing can free its payloads meanwhile.
      state: withoutStoredRefs(session.toRecord(), !pagedOut),
      persistent: session.persistent,
      epoch: entry.epoch,
      owner: entry.owner,
      holder: entry.attached ? entry.holder : undefined,
      attachment: entry.attached ? attachment as Omit<Attachment, "permissions"> : undefined,
      disconnectedAt: entry.disconnectedAt,
    });
    if (pagedOut) broker.registry.pageOut(entry);
  }
  return { sessions, retained: await broker.retained.readAll(), wills: broker.wills.exportAll() };
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
 * A delivery for the snapshot: no stored ref, and a payload of its own where this node's session frees its
 * payload once acknowledged (Delivery.ownsPayload), which may happen while the snapshot is still being built.
 */
function exported(delivery: Delivery, copyOwnPayload: boolean): Delivery {
  const message = copyOwnPayload && delivery.ownsPayload
    ? { ...delivery.message, payload: delivery.message.payload.slice() }
    : delivery.message;
  return {
    ...delivery,
    message,
    storedRef: undefined,
    ownsPayload: undefined,
  };
}

/** Installs another node's state into an empty broker, storing all of it. */
export function importState(broker: BrokerParts, state: BrokerState): void {
  const { registry, router } = broker;
  const now = broker.clock.now();
  for (const message of state.retained) broker.retained.set(message);
  for (const snapshot of state.sessions) {
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
      entry.disconnectedAt ??= now;
      registry.armExpiry(entry);
    }
    broker.persistence.sessionChanged(session);
    if (!entry.attached && session.persistent) session.pageOut();
  }
  broker.wills.importAll(state.wills);
}
