import type { Properties, QoS } from "../codec/types.ts";
import type { Effect, EffectSink, Message } from "./types.ts";

/** An {@link EffectSink} that keeps the effects in a list, a "deliver" effect per message, to run later. */
export class EffectList implements EffectSink {
  /** `effects`: the list to append to; it may be replaced, to reuse one sink for many lists. */
  constructor(public effects: Effect[] = []) {}

  push(effect: Effect): void {
    this.effects.push(effect);
  }

  deliver(
    message: Message,
    qos: QoS,
    packetId: number | undefined,
    dup: boolean,
    retain: boolean,
    properties: Properties,
    topic: string,
  ): void {
    this.effects.push({ kind: "deliver", message, qos, packetId, dup, retain, properties, topic });
  }
}
