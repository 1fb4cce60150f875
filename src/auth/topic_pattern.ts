/**
 * Topic-pattern arithmetic for ACLs, on topics split at `/` into levels. Patterns and filters use the
 * MQTT wildcards: `+` one level, `#` any number of levels (including none) at the end. As the spec
 * requires, a pattern or filter starting with a wildcard never reaches a topic starting with `$`.
 */

const SHARED_PREFIX = "$share/";

/** Why a pattern is not a valid topic filter, or undefined when it is. */
export function invalidPatternReason(pattern: string): string | undefined {
  if (pattern === "") return "topic pattern must not be empty";
  if (pattern.includes("\u0000")) return "topic pattern must not contain U+0000";
  const levels = pattern.split("/");
  for (const [index, level] of levels.entries()) {
    if (level.includes("#") && (level !== "#" || index !== levels.length - 1)) {
      return "'#' must be a whole level and the last one";
    }
    if (level.includes("+") && level !== "+") return "'+' must be a whole level";
  }
  return undefined;
}

/** The filter a shared subscription (`$share/<group>/<filter>`) applies, else the filter itself. */
export function unsharedFilter(filter: string): string {
  if (!filter.startsWith(SHARED_PREFIX)) return filter;
  const groupEnd = filter.indexOf("/", SHARED_PREFIX.length);
  return groupEnd < 0 ? filter : filter.slice(groupEnd + 1);
}

function isWildcard(level: string): boolean {
  return level === "+" || level === "#";
}

/** Whether a `$`-topic first level keeps a wildcard first level out (spec §4.7.2). */
function blocksSystemTopic(pattern: readonly string[], other: readonly string[]): boolean {
  return isWildcard(pattern[0]) && other[0].startsWith("$");
}

/** Whether the pattern matches the topic name. */
export function matchesTopic(pattern: readonly string[], topic: readonly string[]): boolean {
  if (blocksSystemTopic(pattern, topic)) return false;
  for (let index = 0; index < pattern.length; index++) {
    const level = pattern[index];
    if (level === "#") return true;
    if (index >= topic.length || (level !== "+" && level !== topic[index])) return false;
  }
  return pattern.length === topic.length;
}

/** Whether every topic the filter matches is matched by the pattern. */
export function coversFilter(pattern: readonly string[], filter: readonly string[]): boolean {
  if (blocksSystemTopic(pattern, filter)) return false;
  for (let index = 0; index < pattern.length; index++) {
    const level = pattern[index];
    if (level === "#") return true;
    if (index >= filter.length) return false;
    const filterLevel = filter[index];
    if (filterLevel === "#") return false; // `#` reaches deeper than any non-`#` pattern level
    if (level !== "+" && (filterLevel === "+" || filterLevel !== level)) return false;
  }
  return pattern.length === filter.length;
}

/** Whether some topic is matched by both the pattern and the filter. */
export function overlapsFilter(pattern: readonly string[], filter: readonly string[]): boolean {
  if (blocksSystemTopic(pattern, filter) || blocksSystemTopic(filter, pattern)) return false;
  const shared = Math.min(pattern.length, filter.length);
  for (let index = 0; index < shared; index++) {
    const level = pattern[index];
    const filterLevel = filter[index];
    if (level === "#" || filterLevel === "#") return true;
    if (level !== "+" && filterLevel !== "+" && level !== filterLevel) return false;
  }
  if (pattern.length === filter.length) return true;
  // the longer one can still end with `#`, which also matches its parent level
  const longer = pattern.length > filter.length ? pattern : filter;
  return longer.length === shared + 1 && longer[shared] === "#";
}

/** Regular-expression syntax characters, escaped where a literal level is copied into a pattern. */
const REGEXP_SYNTAX = /[\\^$.*+?()[\]{}|/-]/g;

/**
 * One regular expression that matches exactly the topic names that {@link matchesTopic} says at least one
 * of `patterns` matches, or undefined for no patterns. It tests the topic string as it is, without splitting
 * it into levels: at every delivery that is several times cheaper than splitting and scanning the rules.
 */
export function topicsRegExp(patterns: readonly (readonly string[])[]): RegExp | undefined {
  if (patterns.length === 0) return undefined;
  const alternatives = patterns.map((levels) => {
    let source = "";
    for (const [index, level] of levels.entries()) {
      // a wildcard first level never reaches a topic starting with $ (spec §4.7.2)
      const notSystem = index === 0 ? "(?!\\$)" : "";
      if (level === "#") return source + (index === 0 ? `${notSystem}[\\s\\S]*` : "(?:/[\\s\\S]*)?");
      if (index > 0) source += "/";
      source += level === "+" ? `${notSystem}[^/]*` : level.replace(REGEXP_SYNTAX, "\\$&");
    }
    return source;
  });
  return new RegExp(`^(?:${alternatives.join("|")})$`);
}
