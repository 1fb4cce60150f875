/**
 * A connection's acknowledgements waiting for storage or for an earlier one, oldest first, without an object
 * each: the type, reason code and packet id packed in one small integer, beside the storage batch each
 * waits for (most share one). As objects in a list let go whenever it emptied, they were some 70 B per
 * durable PUBLISH for the broker's thread to collect (the object, and the list's ring grown again after each
 * batch); a connection now takes a list from a pool when an acknowledgement has to wait, and gives it back,
 * rings and all, once none does.
 */
import { Fifo } from "../session/fifo.ts";

/** Slots a pooled list's rings keep: a busy publisher's batch of acknowledgements. */
const KEEP_SLOTS = 4096;
/** Lists kept for reuse: about the publishers busy at once (each ring of 4096 slots is 16 KB at most). */
const POOL_SIZE = 64;

const PUBREC_BIT = 1 << 24;

/** The acknowledgement types an AckEffect carries. */
export type AckType = "puback" | "pubrec";

export class WaitingAcks {
  static readonly #pool: WaitingAcks[] = [];

  /** A list to use until {@link release}. */
  static take(): WaitingAcks {
    return WaitingAcks.#pool.pop() ?? new WaitingAcks();
  }

  readonly #acks = new Fifo<number>(KEEP_SLOTS);
  readonly #durables = new Fifo<Promise<void> | undefined>(KEEP_SLOTS);

  private constructor() {}

  get length(): number {
    return this.#acks.length;
  }

  push(type: AckType, packetId: number, reasonCode: number, durable: Promise<void> | undefined): void {
    this.#acks.push(packetId | (reasonCode << 16) | (type === "pubrec" ? PUBREC_BIT : 0));
    this.#durables.push(durable);
  }

  /** What the oldest waits for: storage, or (undefined) only the ones before it. */
  get firstDurable(): Promise<void> | undefined {
    return this.#durables.peek();
  }

  /** Removes the oldest; returns it packed (see {@link ackType}, {@link ackPacketId}, {@link ackReasonCode}). */
  shift(): number {
    this.#durables.shift();
    return this.#acks.shift()!;
  }

  /** Gives the emptied list back for another connection to take. */
  release(): void {
    if (this.length === 0 && WaitingAcks.#pool.length < POOL_SIZE) WaitingAcks.#pool.push(this);
  }
}

export const ackType = (packed: number): AckType => (packed & PUBREC_BIT) !== 0 ? "pubrec" : "puback";
export const ackPacketId = (packed: number): number => packed & 0xffff;
export const ackReasonCode = (packed: number): number => (packed >>> 16) & 0xff;
