/**
 * Messages as a RocketMQ broker stores them and answers a pull with them (one after another, each in the
 * commit log's own layout, `MessageDecoder` in RocketMQ's Java code). Only what the log reader needs is
 * read: the queue offset and the body, whose CRC is checked.
 */
import { crc32, inflateSync } from "node:zlib";

/** One stored message: its place in its queue and its body. */
export interface StoredMessage {
  queueOffset: number;
  body: Uint8Array;
}

const MAGIC_V1 = -626843481;
/** V2 writes the topic's length in two bytes instead of one; the topic is skipped here either way. */
const MAGIC_V2 = -626843477;
const COMPRESSED_FLAG = 0x1;
const BORN_HOST_V6_FLAG = 0x10;
const STORE_HOST_V6_FLAG = 0x20;
const COMPRESSION_TYPE_MASK = 0x700;
/** zlib is both the legacy default (0) and an explicit type (3 << 8); LZ4 and zstd are not read here. */
const ZLIB_TYPES = new Set([0, 0x300]);

/**
 * Fixed-size fields before the born host: total size, magic, body CRC, queue id, flag, queue offset,
 * physical offset, sys flag, born timestamp.
 */
const SYS_FLAG_AT = 36;
const BORN_HOST_AT = 48;

/** Splits a pull answer's body into its messages; throws on anything malformed or a body whose CRC is wrong. */
export function decodeStoredMessages(bytes: Uint8Array): StoredMessage[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const messages: StoredMessage[] = [];
  for (let at = 0; at < bytes.length;) {
    if (bytes.length - at < BORN_HOST_AT) throw new Error(`stored message at byte ${at} is truncated`);
    const totalSize = view.getInt32(at);
    if (totalSize < BORN_HOST_AT || at + totalSize > bytes.length) {
      throw new Error(`stored message at byte ${at} has a bad size ${totalSize}`);
    }
    const magic = view.getInt32(at + 4);
    if (magic !== MAGIC_V1 && magic !== MAGIC_V2) {
      throw new Error(`stored message at byte ${at} has an unknown magic code ${magic}`);
    }
    const bodyCrc = view.getInt32(at + 8);
    const queueOffset = Number(view.getBigInt64(at + 20));
    const sysFlag = view.getInt32(at + SYS_FLAG_AT);
    let p = at + BORN_HOST_AT;
    p += (sysFlag & BORN_HOST_V6_FLAG ? 16 : 4) + 4; // born host address and port
    p += 8; // store timestamp
    p += (sysFlag & STORE_HOST_V6_FLAG ? 16 : 4) + 4; // store host address and port
    p += 4 + 8; // reconsume times, prepared transaction offset
    const end = at + totalSize;
    if (p + 4 > end) throw new Error(`stored message at offset ${queueOffset} is truncated`);
    const bodyLength = view.getInt32(p);
    p += 4;
    if (bodyLength < 0 || p + bodyLength > end) {
      throw new Error(`stored message at offset ${queueOffset} has a bad body length ${bodyLength}`);
    }
    let body = bytes.subarray(p, p + bodyLength);
    // The broker keeps crc32 & 0x7fffffff of the body as it was sent (compressed, if it was).
    if (((crc32(body) & 0x7fffffff) | 0) !== bodyCrc) {
      throw new Error(`stored message at offset ${queueOffset} has a body whose CRC does not match`);
    }
    if (sysFlag & COMPRESSED_FLAG) {
      if (!ZLIB_TYPES.has(sysFlag & COMPRESSION_TYPE_MASK)) {
        throw new Error(`stored message at offset ${queueOffset} is compressed other than with zlib`);
      }
      body = new Uint8Array(inflateSync(body));
    }
    messages.push({ queueOffset, body });
    at = end; // topic and properties follow, and are not needed
  }
  return messages;
}
