import { MqttError } from "../codec/errors.ts";
import { ReasonCode } from "../codec/reason_codes.ts";

/** The parts of a `$share/<group>/<filter>` subscription (spec §4.8.2). */
export interface SharedFilter {
  group: string;
  filter: string;
}

const SHARE_PREFIX = "$share/";

/**
 * Checks a PUBLISH topic name: non-empty [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2],
 * at most `maxLevels` levels. Throws MqttError 0x90.
 */
export function validateTopicName(topic: string, maxLevels: number): void {
  if (topic.length === 0) {
    throw new MqttError(ReasonCode.TopicNameInvalid, "empty topic name", "[MQTT-4.7.3-1]");
  }
  let levels = 1;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x2b || c === 0x23) {
      throw new MqttError(ReasonCode.TopicNameInvalid, "wildcard in topic name", "[MQTT-3.3.2-2]");
    }
    if (c === 0x2f) levels++;
  }
  if (levels > maxLevels) {
    throw new MqttError(ReasonCode.TopicNameInvalid, `topic has more than ${maxLevels} levels`);
  }
}

/**
 * Checks a topic filter: non-empty [MQTT-4.7.3-1]; `#` only as the whole last level [MQTT-4.7.1-2];
 * `+` only as a whole level [MQTT-4.7.1-3]. Throws MqttError 0x8F.
 */
export function validateTopicFilter(filter: string, maxLevels: number): void {
  if (filter.length === 0) {
    throw new MqttError(ReasonCode.TopicFilterInvalid, "empty topic filter", "[MQTT-4.7.3-1]");
  }
  let levels = 1;
  for (let i = 0; i < filter.length; i++) {
    const c = filter.charCodeAt(i);
    const startsLevel = i === 0 || filter.charCodeAt(i - 1) === 0x2f;
    const endsLevel = i === filter.length - 1 || filter.charCodeAt(i + 1) === 0x2f;
    if (c === 0x23 && !(startsLevel && i === filter.length - 1)) {
      throw new MqttError(
        ReasonCode.TopicFilterInvalid,
        "'#' must be the last level on its own",
        "[MQTT-4.7.1-2]",
      );
    }
    if (c === 0x2b && !(startsLevel && endsLevel)) {
      throw new MqttError(ReasonCode.TopicFilterInvalid, "'+' must fill a whole level", "[MQTT-4.7.1-3]");
    }
    if (c === 0x2f) levels++;
  }
  if (levels > maxLevels) {
    throw new MqttError(ReasonCode.TopicFilterInvalid, `filter has more than ${maxLevels} levels`);
  }
}

/** True when the filter contains `+` or `#`. */
export function hasWildcard(filter: string): boolean {
  return filter.includes("+") || filter.includes("#");
}

/** True for a `$share/<group>/<filter>` filter (whether it is a valid one is {@link parseSharedFilter}'s). */
export function isSharedFilter(filter: string): boolean {
  return filter.startsWith(SHARE_PREFIX);
}

/**
 * Splits `$share/<group>/<filter>`; returns undefined for a plain filter. The share name must be
 * non-empty and free of `/`, `+` and `#` [MQTT-4.8.2-1], and a filter must follow [MQTT-4.8.2-2].
 */
export function parseSharedFilter(filter: string, maxLevels: number): SharedFilter | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf("/", SHARE_PREFIX.length);
  const group = filter.slice(SHARE_PREFIX.length, slash < 0 ? undefined : slash);
  if (group.length === 0 || group.includes("+") || group.includes("#")) {
    throw new MqttError(ReasonCode.TopicFilterInvalid, "invalid share name", "[MQTT-4.8.2-1]");
  }
  if (slash < 0 || slash === filter.length - 1) {
    throw new MqttError(
      ReasonCode.TopicFilterInvalid,
      "shared subscription without a filter",
      "[MQTT-4.8.2-2]",
    );
  }
  const inner = filter.slice(slash + 1);
  validateTopicFilter(inner, maxLevels);
  return { group, filter: inner };
}

/**
 * Whether `topic` matches `filter` (both already valid). Wildcards at the first level never match
 * topics beginning with `$` [MQTT-4.7.2-1].
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === 0x24 && (filter.charCodeAt(0) === 0x2b || filter.charCodeAt(0) === 0x23)) {
    return false;
  }
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
