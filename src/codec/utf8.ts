/**
 * UTF-8 string helpers for the codec. MQTT strings must be well-formed UTF-8 without U+0000 or
 * surrogates [MQTT-1.5.4-1] [MQTT-1.5.4-2]; a fatal TextDecoder rejects ill-formed sequences and encoded
 * surrogates, and a byte scan catches U+0000 (valid UTF-8 can only spell it as a 0x00 byte).
 *
 * The control characters U+0001..U+001F and U+007F..U+009F are Disallowed Unicode code points that a
 * receiver MAY treat as a Malformed Packet (3.1.1 §1.5.3, 5.0 §1.5.4); callers that refuse them pass
 * `allowControls = false`. In UTF-8 they are the bytes 01..1F and 7F, and C2 80..C2 9F.
 */
import { malformed, MqttError } from "./errors.ts";
import { ReasonCode } from "./reason_codes.ts";

// ignoreBOM keeps a leading U+FEFF, which must not be stripped [MQTT-1.5.4-3].
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Below this many bytes, building an ASCII string in JS beats a call into TextDecoder/TextEncoder. */
const SHORT_STRING = 48;

const NUL = 0x00;
const PLUS = 0x2b;
const HASH = 0x23;
const DEL = 0x7f;
/** Lead byte of U+0080..U+00BF; followed by 80..9F it spells a C1 control character. */
const C1_LEAD = 0xc2;

/** Largest length a two-byte length prefix can express. */
export const MAX_STRING_BYTES = 0xffff;

/** Number of bytes `text` takes in UTF-8 (lone surrogates count as U+FFFD, as TextEncoder writes them). */
export function utf8Length(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) {
      length += 1;
      continue;
    }
    length += 2;
    // A surrogate pair is two UTF-16 units and four UTF-8 bytes: the low half adds nothing more.
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
  }
  return length;
}

/**
 * Writes `text`, whose UTF-8 length is `byteLength`, at `pos` without a length prefix; returns the
 * position after it.
 */
export function writeUtf8(buf: Uint8Array, pos: number, text: string, byteLength: number): number {
  if (byteLength === text.length && byteLength <= SHORT_STRING) {
    for (let i = 0; i < byteLength; i++) buf[pos + i] = text.charCodeAt(i);
  } else {
    utf8Encoder.encodeInto(text, buf.subarray(pos, pos + byteLength));
  }
  return pos + byteLength;
}

/** Scratch arrays for the character codes of a short string, one per length: reused, never resized. */
const shortCodesByLength: number[][] = Array.from(
  { length: SHORT_STRING + 1 },
  (_, n) => new Array(n).fill(0),
);

/**
 * A short ASCII string made in one piece. Added one character at a time it was a chain of a string per
 * character past the 12th (V8 makes a long concatenation a pair of references to its halves), some 500 B
 * for a 24-character client id, and flattened again at its first lookup in a map.
 */
function decodeAscii(buf: Uint8Array, start: number, end: number): string {
  const length = end - start;
  if (length > SHORT_STRING) return utf8Decoder.decode(buf.subarray(start, end));
  const codes = shortCodesByLength[length];
  for (let i = 0; i < length; i++) codes[i] = buf[start + i];
  return String.fromCharCode.apply(null, codes);
}

function decodeNonAscii(buf: Uint8Array, start: number, end: number): string {
  try {
    return utf8Decoder.decode(buf.subarray(start, end));
  } catch {
    throw malformed("String is not well-formed UTF-8", "[MQTT-1.5.4-1]");
  }
}

/** True when the byte at `i` starts a control character (C0 other than U+0000, DEL, or C1). */
function isControlAt(buf: Uint8Array, i: number, end: number): boolean {
  const byte = buf[i];
  if (byte < 0x20 || byte === DEL) return true;
  return byte === C1_LEAD && i + 1 < end && buf[i + 1] >= 0x80 && buf[i + 1] <= 0x9f;
}

function controlCharacter(what: string) {
  return malformed(`${what} contains a control character (U+0001..U+001F, U+007F..U+009F)`, "§1.5.4");
}

/**
 * Decodes the UTF-8 string in `buf[start, end)`; throws 0x81 for ill-formed UTF-8 or U+0000, and for a
 * control character unless `allowControls`. `what` names the field in the error.
 */
export function decodeUtf8(
  buf: Uint8Array,
  start: number,
  end: number,
  allowControls = true,
  what = "String",
): string {
  let high = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i];
    if (byte === NUL) throw malformed(`${what} contains U+0000`, "[MQTT-1.5.4-2]");
    if (!allowControls && isControlAt(buf, i, end)) throw controlCharacter(what);
    high |= byte;
  }
  return high < 0x80 ? decodeAscii(buf, start, end) : decodeNonAscii(buf, start, end);
}

/** Decodes a topic name and tells whether it holds a control character (such names are not cached). */
function decodeTopicBytes(
  buf: Uint8Array,
  start: number,
  end: number,
  allowControls: boolean,
): { topic: string; controls: boolean } {
  let high = 0;
  let controls = false;
  for (let i = start; i < end; i++) {
    const byte = buf[i];
    if (byte === NUL) throw malformed("Topic name contains U+0000", "[MQTT-1.5.4-2]");
    if (byte === PLUS || byte === HASH) {
      throw new MqttError(ReasonCode.TopicNameInvalid, "Topic name contains a wildcard", "[MQTT-3.3.2-2]");
    }
    if ((byte < 0x20 || byte === DEL || byte === C1_LEAD) && isControlAt(buf, i, end)) {
      if (!allowControls) throw controlCharacter("Topic name");
      controls = true;
    }
    high |= byte;
  }
  const topic = high < 0x80 ? decodeAscii(buf, start, end) : decodeNonAscii(buf, start, end);
  return { topic, controls };
}

/*
 * A broker sees the same topic names over and over, and hashing and comparing bytes is several times
 * cheaper than building a string, so recently decoded topic names are kept in a direct-mapped cache
 * (slot = hash of the bytes). Only valid names without control characters enter it, so a hit needs no
 * validation whichever way the caller treats control characters.
 */
const TOPIC_CACHE_SLOTS = 1024;
const CACHED_TOPIC_MAX = 256;
const cachedTopicBytes = new Uint8Array(TOPIC_CACHE_SLOTS * CACHED_TOPIC_MAX);
const cachedTopicLengths = new Int32Array(TOPIC_CACHE_SLOTS).fill(-1);
const cachedTopics: string[] = new Array(TOPIC_CACHE_SLOTS).fill("");

function topicSlot(buf: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ buf[i], 0x01000193);
  return (hash ^ (hash >>> 16)) & (TOPIC_CACHE_SLOTS - 1);
}

function isCached(slot: number, buf: Uint8Array, start: number, end: number): boolean {
  if (cachedTopicLengths[slot] !== end - start) return false;
  let at = slot * CACHED_TOPIC_MAX;
  for (let i = start; i < end; i++) {
    if (cachedTopicBytes[at++] !== buf[i]) return false;
  }
  return true;
}

/**
 * Decodes a Topic Name in `buf[start, end)`: a string that must not contain the wildcards `+` and `#`
 * [MQTT-3.3.2-2] (0x90), nor control characters unless `allowControls` (0x81). The wildcard bytes never
 * occur inside multi-byte UTF-8 sequences, so a byte scan is exact.
 */
export function decodeTopicName(buf: Uint8Array, start: number, end: number, allowControls = true): string {
  if (end - start > CACHED_TOPIC_MAX) return decodeTopicBytes(buf, start, end, allowControls).topic;
  const slot = topicSlot(buf, start, end);
  if (isCached(slot, buf, start, end)) return cachedTopics[slot];
  const { topic, controls } = decodeTopicBytes(buf, start, end, allowControls);
  if (controls) return topic;
  cachedTopicBytes.set(buf.subarray(start, end), slot * CACHED_TOPIC_MAX);
  cachedTopicLengths[slot] = end - start;
  cachedTopics[slot] = topic;
  return topic;
}
