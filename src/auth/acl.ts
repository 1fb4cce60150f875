/**
 * ACL files: who may publish to and subscribe to which topics. The grammar, one statement per line:
 *
 * ```
 * # comment                              blank lines and lines starting with '#' are ignored
 * user <name>                            the rules below apply to clients with this user name
 * clientid <id>                          the rules below apply to clients with this client id
 * [pattern] <allow|deny> <action> <topic pattern>
 * ```
 *
 * - Rules before the first `user`/`clientid` line apply to every client, and so does a rule starting
 *   with `pattern` wherever it stands (Mosquitto's keyword for such rules).
 * - A `<name>` or `<id>` ending in `*` is a prefix: `clientid sensor-*`; `user *` is every client
 *   that has a user name. Anonymous clients match no `user` section.
 * - `<action>`: `publish` (alias `write`), `subscribe` (alias `read`), `readwrite` (alias `both`).
 * - `<topic pattern>` is the rest of the line: a topic filter with `+` and `#`, in which `%u` stands for
 *   the client's user name and `%c` for its client id.
 * - The order of lines never matters: a matching `deny` always wins over a matching `allow`; when no
 *   rule matches, the authorizer's default policy decides.
 * - Publishing to a topic needs a rule whose pattern matches the topic. Subscribing to a filter needs
 *   an `allow` rule whose pattern covers every topic the filter can match (`sensors/#` allows
 *   `sensors/+/temp`, `sensors/+/temp` does not allow `sensors/#`), and is refused when a `deny`
 *   rule's pattern covers the whole filter. A `deny` rule withholds only its own topics: a filter that
 *   merely overlaps it (`#` against `deny subscribe a/b`) is granted, and the denied topics are filtered
 *   out where each message is delivered (`canReceive`), as Mosquitto does. A shared subscription
 *   `$share/<group>/<filter>` is judged by `<filter>`.
 * - Receiving a message on a topic (checked at every delivery, so a reload takes effect on existing
 *   subscriptions) needs what subscribing to that one topic needs.
 * - `%u`/`%c` never widen access: when the user name or client id is absent, empty, starts with `$` or
 *   contains `+`, `#`, `/` or U+0000, `allow` rules using it are ignored and `deny` rules using it
 *   deny everything below the levels before the placeholder (`deny publish private/%u/x` becomes
 *   `private/#`).
 */
import { AuthFileError, meaningfulLines } from "./auth_file.ts";
import type { ClientIdentity } from "./port.ts";
import {
  coversFilter,
  invalidPatternReason,
  matchesTopic,
  topicsRegExp,
  unsharedFilter,
} from "./topic_pattern.ts";

/** One `allow`/`deny` line. */
export interface AclRule {
  effect: "allow" | "deny";
  publish: boolean;
  subscribe: boolean;
  levels: readonly string[];
  /** Whether `levels` contain `%u` or `%c`. */
  substitutes: boolean;
}

/** Rules that apply to the names starting with `prefix`. */
interface PrefixSection {
  prefix: string;
  rules: AclRule[];
}

/** A parsed ACL file, indexed by the sections that select clients. */
export interface AclPolicy {
  everyone: AclRule[];
  byUsername: Map<string, AclRule[]>;
  byUsernamePrefix: PrefixSection[];
  byClientId: Map<string, AclRule[]>;
  byClientIdPrefix: PrefixSection[];
}

const ACTIONS: Record<string, { publish: boolean; subscribe: boolean }> = {
  publish: { publish: true, subscribe: false },
  write: { publish: true, subscribe: false },
  subscribe: { publish: false, subscribe: true },
  read: { publish: false, subscribe: true },
  readwrite: { publish: true, subscribe: true },
  both: { publish: true, subscribe: true },
};

const SECTION_LINE = /^(user|clientid)\s+(.+)$/;
const RULE_LINE = /^(?:(pattern)\s+)?(allow|deny)\s+(\S+)\s+(.+)$/;
const PLACEHOLDER = /%[uc]/g;
const PLACEHOLDER_PRESENT = /%[uc]/;

/** An ACL without rules: the default policy decides everything. */
export function emptyAclPolicy(): AclPolicy {
  return {
    everyone: [],
    byUsername: new Map(),
    byUsernamePrefix: [],
    byClientId: new Map(),
    byClientIdPrefix: [],
  };
}

function sectionRules(policy: AclPolicy, kind: string, name: string): AclRule[] {
  const exact = kind === "user" ? policy.byUsername : policy.byClientId;
  const prefixes = kind === "user" ? policy.byUsernamePrefix : policy.byClientIdPrefix;
  if (name.endsWith("*")) {
    const prefix = name.slice(0, -1);
    const section = prefixes.find((candidate) => candidate.prefix === prefix) ?? { prefix, rules: [] };
    if (!prefixes.includes(section)) prefixes.push(section);
    return section.rules;
  }
  const rules = exact.get(name) ?? [];
  exact.set(name, rules);
  return rules;
}

/** Parses an ACL file; `source` names it in the `AuthFileError` thrown at the first bad line. */
export function parseAclFile(text: string, source: string): AclPolicy {
  const policy = emptyAclPolicy();
  let current = policy.everyone;
  for (const { lineNumber, content } of meaningfulLines(text)) {
    const section = SECTION_LINE.exec(content);
    if (section) {
      current = sectionRules(policy, section[1], section[2].trim());
      continue;
    }
    const rule = RULE_LINE.exec(content);
    if (!rule) {
      throw new AuthFileError(
        source,
        lineNumber,
        "expected 'user <name>', 'clientid <id>' or '[pattern] allow|deny <action> <topic>'",
      );
    }
    const [, everyone, effect, actionName, patternText] = rule;
    if (!Object.hasOwn(ACTIONS, actionName)) {
      throw new AuthFileError(
        source,
        lineNumber,
        `unknown action "${actionName}" (use ${Object.keys(ACTIONS).join(", ")})`,
      );
    }
    const pattern = patternText.trim();
    const invalid = invalidPatternReason(pattern);
    if (invalid) throw new AuthFileError(source, lineNumber, invalid);
    (everyone ? policy.everyone : current).push({
      effect: effect as AclRule["effect"],
      ...ACTIONS[actionName],
      levels: pattern.split("/"),
      substitutes: PLACEHOLDER_PRESENT.test(pattern),
    });
  }
  return policy;
}

/** A name that can stand in a topic level without matching more than itself. */
function isSafeSubstitute(value: string | undefined): value is string {
  return value !== undefined && value !== "" && !value.startsWith("$") && !/[+#/]/.test(value) &&
    !value.includes("\u0000");
}

/** The rule's levels for this client, or undefined when the rule does not apply to it. */
function substitute(rule: AclRule, client: ClientIdentity): readonly string[] | undefined {
  if (!rule.substitutes) return rule.levels;
  const levels: string[] = [];
  for (const level of rule.levels) {
    let unsafe = false;
    const substituted = level.replace(PLACEHOLDER, (placeholder) => {
      const value = placeholder === "%u" ? client.username : client.clientId;
      if (isSafeSubstitute(value)) return value;
      unsafe = true;
      return "";
    });
    if (unsafe) return rule.effect === "deny" ? [...levels, "#"] : undefined;
    levels.push(substituted);
  }
  return levels;
}

function rulesFor(policy: AclPolicy, client: ClientIdentity): AclRule[] {
  const rules = [...policy.everyone, ...(policy.byClientId.get(client.clientId) ?? [])];
  for (const section of policy.byClientIdPrefix) {
    if (client.clientId.startsWith(section.prefix)) rules.push(...section.rules);
  }
  const { username } = client;
  if (username === undefined) return rules;
  rules.push(...(policy.byUsername.get(username) ?? []));
  for (const section of policy.byUsernamePrefix) {
    if (username.startsWith(section.prefix)) rules.push(...section.rules);
  }
  return rules;
}

/** The decisions of one ACL for one client, with `%u`/`%c` already substituted. */
export class ClientAcl {
  readonly #publish: { deny: boolean; levels: readonly string[] }[] = [];
  readonly #denySubscribe: (readonly string[])[] = [];
  readonly #allowSubscribe: (readonly string[])[] = [];
  /** The read rules compiled for delivery checks, on first use (most clients never need them). */
  #readRules: { deny?: RegExp; allow?: RegExp } | undefined;

  constructor(policy: AclPolicy, client: ClientIdentity, private readonly defaultAllow: boolean) {
    for (const rule of rulesFor(policy, client)) {
      const levels = substitute(rule, client);
      if (!levels) continue;
      const deny = rule.effect === "deny";
      // deny rules first, so that the first matching rule decides
      if (rule.publish) this.#publish[deny ? "unshift" : "push"]({ deny, levels });
      if (rule.subscribe) (deny ? this.#denySubscribe : this.#allowSubscribe).push(levels);
    }
  }

  /** Whether the client may publish to the topic name. */
  canPublish(topic: string): boolean {
    const levels = topic.split("/");
    for (const rule of this.#publish) {
      if (matchesTopic(rule.levels, levels)) return !rule.deny;
    }
    return this.defaultAllow;
  }

  /** Whether the client may subscribe to the topic filter (denied topics within it are withheld at delivery). */
  canSubscribe(topicFilter: string): boolean {
    const levels = unsharedFilter(topicFilter).split("/");
    if (this.#denySubscribe.some((pattern) => coversFilter(pattern, levels))) return false;
    if (this.#allowSubscribe.some((pattern) => coversFilter(pattern, levels))) return true;
    return this.defaultAllow;
  }

  /**
   * Whether a message on the topic name may be delivered to the client. Runs for every delivery, so the
   * rules are compiled into one regular expression per effect: no split, no per-rule loop.
   */
  canReceive(topic: string): boolean {
    const rules = this.#readRules ??= {
      deny: topicsRegExp(this.#denySubscribe),
      allow: topicsRegExp(this.#allowSubscribe),
    };
    if (rules.deny?.test(topic)) return false;
    // with a default of allow, an allow rule changes nothing: one test saved per delivery
    return this.defaultAllow || (rules.allow?.test(topic) ?? false);
  }

  /** True when every topic may be delivered to this client (no read rule denies, the default allows). */
  get receivesEverything(): boolean {
    return this.defaultAllow && this.#denySubscribe.length === 0;
  }
}
