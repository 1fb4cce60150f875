/**
 * The MQTT 3.1 / 3.1.1 / 5.0 wire codec: packet types, the incremental {@link Decoder}, and the
 * exact-size encoders {@link encode} and {@link encodePublish}.
 */
export * from "./types.ts";
export * from "./errors.ts";
export * from "./reason_codes.ts";
export { Decoder, type DecoderOptions } from "./decoder.ts";
export { DecodedPublish, publishPayloadLength } from "./decode_publish.ts";
export { encode, encodedLength } from "./encode_packets.ts";
export {
  encodePublish,
  forwardableAt,
  type ForwardTarget,
  frameLevel,
  publishEncodedLength,
  publishFrameLength,
  type PublishOverrides,
  publishTopicEnd,
  writeForwarded,
} from "./encode_publish.ts";
export { hasProperties } from "./properties.ts";
