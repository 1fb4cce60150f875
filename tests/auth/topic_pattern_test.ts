import assert from "node:assert/strict";
import { Rng } from "../fuzz/fuzz.ts";
import {
  coversFilter,
  invalidPatternReason,
  matchesTopic,
  overlapsFilter,
  topicsRegExp,
  unsharedFilter,
} from "../../src/auth/topic_pattern.ts";

const levels = (text: string) => text.split("/");

Deno.test("matchesTopic follows MQTT matching, including '#' matching the parent and '$' topics", () => {
  const cases: [string, string, boolean][] = [
    ["sensors/#", "sensors", true],
    ["sensors/#", "sensors/a/b", true],
    ["sensors/+", "sensors/a", true],
    ["sensors/+", "sensors/a/b", false],
    ["sensors/+", "sensors", false],
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["+/+", "a/", true],
    ["#", "$SYS/uptime", false],
    ["+/uptime", "$SYS/uptime", false],
    ["$SYS/#", "$SYS/uptime", true],
  ];
  for (const [pattern, topic, expected] of cases) {
    assert.equal(matchesTopic(levels(pattern), levels(topic)), expected, `${pattern} vs ${topic}`);
  }
});

Deno.test("coversFilter holds only when every topic of the filter is matched by the pattern", () => {
  const cases: [string, string, boolean][] = [
    ["sensors/#", "sensors/+/temp", true],
    ["sensors/#", "sensors/#", true],
    ["sensors/#", "sensors", true],
    ["sensors/+/temp", "sensors/#", false],
    ["sensors/+/temp", "sensors/+/temp", true],
    ["sensors/+/temp", "sensors/kitchen/temp", true],
    ["sensors/kitchen/temp", "sensors/+/temp", false],
    ["sensors/+", "sensors/+/temp", false],
    ["#", "anything/#", true],
    ["#", "$SYS/#", false],
    ["+/#", "+/x", true],
  ];
  for (const [pattern, filter, expected] of cases) {
    assert.equal(coversFilter(levels(pattern), levels(filter)), expected, `${pattern} covers ${filter}`);
  }
});

Deno.test("overlapsFilter holds when some topic matches both", () => {
  const cases: [string, string, boolean][] = [
    ["alice/secret", "alice/#", true],
    ["alice/secret", "+/secret", true],
    ["alice/secret", "alice/+/x", false],
    ["alice/#", "alice", true],
    ["alice/+/#", "alice", false],
    ["a/+", "+/b", true],
    ["a/b", "a/c", false],
    ["#", "$SYS/x", false],
    ["$SYS/x", "+/x", false],
    ["a/b/c", "a/b", false],
  ];
  for (const [pattern, filter, expected] of cases) {
    assert.equal(overlapsFilter(levels(pattern), levels(filter)), expected, `${pattern} overlaps ${filter}`);
    assert.equal(
      overlapsFilter(levels(filter), levels(pattern)),
      expected,
      `symmetric: ${filter} overlaps ${pattern}`,
    );
  }
});

Deno.test("invalid patterns are explained and shared subscriptions are judged by their filter", () => {
  assert.equal(invalidPatternReason("a/+/#"), undefined);
  assert.match(invalidPatternReason("a/#/b")!, /'#' must be a whole level and the last one/);
  assert.match(invalidPatternReason("a/b#")!, /'#'/);
  assert.match(invalidPatternReason("a/b+")!, /'\+' must be a whole level/);
  assert.match(invalidPatternReason("")!, /empty/);
  assert.equal(unsharedFilter("$share/group/sensors/+"), "sensors/+");
  assert.equal(unsharedFilter("sensors/+"), "sensors/+");
});

Deno.test("topicsRegExp matches exactly the topics matchesTopic matches (seeded random patterns and topics)", () => {
  const rng = new Rng(0x7091c);
  const levels = ["a", "b", "$SYS", "", "x.y", "(1)", "é", "+", "#", "a*b", "[c]", "\\", "^$"];
  const topicLevels = levels.filter((level) => level !== "+" && level !== "#");
  const randomPattern = () => {
    const count = rng.int(1, 4);
    return Array.from({ length: count }, (_, index) => {
      const level = rng.pick(levels);
      return level === "#" && index < count - 1 ? "+" : level;
    });
  };
  const topics = Array.from(
    { length: 200 },
    () => Array.from({ length: rng.int(1, 4) }, () => rng.pick(topicLevels)),
  );
  for (let round = 0; round < 300; round++) {
    const patterns = Array.from({ length: rng.int(1, 3) }, randomPattern);
    const regexp = topicsRegExp(patterns)!;
    for (const topic of topics) {
      const expected = patterns.some((pattern) => matchesTopic(pattern, topic));
      assert.equal(
        regexp.test(topic.join("/")),
        expected,
        `${JSON.stringify(patterns)} on ${topic.join("/")}`,
      );
    }
  }
  assert.equal(topicsRegExp([]), undefined);
});
