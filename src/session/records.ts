import type { QoS } from "../codec/types.ts";
import type { Delivery, DeliveryStage, RecordSink } from "./types.ts";

const SAVE = 0;
const DELETE = 1;
const REQUEUE = 2;
const DROP_OLDEST = 3;
const AWAITING_RELEASE = 4;

const STAGES: readonly DeliveryStage[] = ["queued", "sent", "released"];
const STAGE_CODES: Readonly<Record<DeliveryStage, number>> = { queued: 0, sent: 1, released: 2 };

/** Slots per change: its code (kind, QoS, stage or waiting), its delivery, its packet id. */
const STRIDE = 3;
const MIN_CHANGES = 4;
/** Emptied, a ring keeps room for this many changes: a session taken after every packet does not regrow. */
const KEEP_WHEN_EMPTY = 4;
const NO_SLOTS: never[] = [];

/**
 * A persistent session's durable changes not yet taken (see Session.takeRecords), oldest first, handed to a
 * {@link RecordSink} field by field. A ring of three slots per change (as Fifo's ring, no allocation at a
 * steady length) rather than an object per change: a durable QoS 1 message made two (its save when sent and
 * its delete when acknowledged), 104 of the 520 B it allocated on the broker's thread.
 */
export class SessionRecords {
  #slots: unknown[] = NO_SLOTS;
  /** The oldest change's index among the ring's changes. */
  #head = 0;
  #length = 0;

  /** Changes not yet taken. */
  get length(): number {
    return this.#length;
  }

  /** A delivery entered the queue, or was sent (`packetId`), or its PUBREL was sent (`released`). */
  saveDelivery(delivery: Delivery, qos: QoS, stage: DeliveryStage, packetId?: number): void {
    this.#push(SAVE | qos << 3 | STAGE_CODES[stage] << 5, delivery, packetId);
  }

  /** A delivery is finished (acknowledged, expired or dropped). */
  deleteDelivery(delivery: Delivery): void {
    this.#push(DELETE, delivery, undefined);
  }

  /**
   * A delivery stored ahead of its turn (see Session.storeHeld) takes its turn: stored again at the queue's
   * tail, as a message of its own, and its first entry deleted.
   */
  requeueDelivery(delivery: Delivery, qos: QoS): void {
    this.#push(REQUEUE | qos << 3, delivery, undefined);
  }

  /** The oldest delivery still waiting in storage is dropped to make room (the session is paged out). */
  dropOldestStored(): void {
    this.#push(DROP_OLDEST, undefined, undefined);
  }

  /** Inbound QoS 2 packet id received (`waiting`) or released. */
  awaitingRelease(packetId: number, waiting: boolean): void {
    this.#push(AWAITING_RELEASE | (waiting ? 1 << 3 : 0), undefined, packetId);
  }

  /** Hands every change to `sink` in order, as `clientId`'s, and empties the list. */
  takeInto(clientId: string, sink: RecordSink): void {
    while (this.#length > 0) {
      const slots = this.#slots;
      const at = this.#head * STRIDE;
      const code = slots[at] as number;
      const delivery = slots[at + 1] as Delivery;
      const packetId = slots[at + 2] as number | undefined;
      slots[at + 1] = undefined; // not kept alive by the list
      this.#head = (this.#head + 1) & (slots.length / STRIDE - 1);
      if (--this.#length === 0) {
        this.#head = 0;
        if (slots.length > KEEP_WHEN_EMPTY * STRIDE) this.#slots = NO_SLOTS;
      }
      // The sink may record more (a storage write that fails is not one); they are taken in this loop too.
      switch (code & 7) {
        case SAVE:
          sink.saveDelivery(clientId, delivery, (code >> 3 & 3) as QoS, STAGES[code >> 5], packetId);
          break;
        case DELETE:
          sink.deleteDelivery(clientId, delivery);
          break;
        case REQUEUE:
          sink.requeueDelivery(clientId, delivery, (code >> 3 & 3) as QoS);
          break;
        case DROP_OLDEST:
          sink.dropOldestStored(clientId);
          break;
        default:
          sink.awaitingRelease(clientId, packetId!, (code & 1 << 3) !== 0);
      }
    }
  }

  #push(code: number, delivery: Delivery | undefined, packetId: number | undefined): void {
    let slots = this.#slots;
    const capacity = slots.length / STRIDE;
    if (this.#length === capacity) slots = this.#grow();
    const at = ((this.#head + this.#length) & (slots.length / STRIDE - 1)) * STRIDE;
    slots[at] = code;
    slots[at + 1] = delivery;
    slots[at + 2] = packetId;
    this.#length++;
  }

  /** Twice the room (at least {@link MIN_CHANGES}), the changes moved to the front in order. */
  #grow(): unknown[] {
    const slots = this.#slots;
    const capacity = slots.length / STRIDE;
    const grownCapacity = Math.max(MIN_CHANGES, 2 * capacity);
    const grown = new Array<unknown>(grownCapacity * STRIDE);
    for (let i = 0; i < this.#length; i++) {
      const from = ((this.#head + i) & (capacity - 1)) * STRIDE;
      grown[i * STRIDE] = slots[from];
      grown[i * STRIDE + 1] = slots[from + 1];
      grown[i * STRIDE + 2] = slots[from + 2];
    }
    for (let i = this.#length * STRIDE; i < grown.length; i++) grown[i] = undefined;
    this.#slots = grown;
    this.#head = 0;
    return grown;
  }
}
