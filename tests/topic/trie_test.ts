/** The subscription trie and topic rules, without a broker. */
import assert from "node:assert/strict";
import { MqttError } from "../../src/codec/mod.ts";
import {
  parseSharedFilter,
  type SharedGroup,
  SubscriptionTrie,
  topicMatches,
  validateTopicFilter,
  validateTopicName,
} from "../../src/topic/mod.ts";
import { Random } from "../codec/support/random.ts";

function matches(trie: SubscriptionTrie<string, string>, topic: string): string[] {
  const found: string[] = [];
  trie.match(topic, {
    subscriber: (clientId, value) => found.push(`${clientId}:${value}`),
    sharedGroup: (group: SharedGroup<string, string>) =>
      found.push(`group ${group.name}:${group.memberKeys.join(",")}`),
  });
  return found.sort();
}

Deno.test("[MQTT-4.7.1-2] [MQTT-4.7.1-3] trie: '+' matches one level, '#' any number including the parent", () => {
  const trie = new SubscriptionTrie<string, string>();
  trie.add("sport/tennis/+", "a", "plus");
  trie.add("sport/#", "b", "hash");
  trie.add("sport/tennis/player1", "c", "exact");
  trie.add("#", "d", "all");
  assert.deepEqual(matches(trie, "sport/tennis/player1"), ["a:plus", "b:hash", "c:exact", "d:all"]);
  assert.deepEqual(matches(trie, "sport"), ["b:hash", "d:all"]);
  assert.deepEqual(matches(trie, "sport/tennis/player1/ranking"), ["b:hash", "d:all"]);
  assert.deepEqual(matches(trie, "other"), ["d:all"]);
});

Deno.test("[MQTT-4.7.2-1] trie: wildcards at the first level do not match topics starting with $", () => {
  const trie = new SubscriptionTrie<string, string>();
  trie.add("#", "a", "all");
  trie.add("+/monitor/Clients", "b", "plus");
  trie.add("$SYS/#", "c", "sys");
  assert.deepEqual(matches(trie, "$SYS/monitor/Clients"), ["c:sys"]);
  assert.deepEqual(matches(trie, "x/monitor/Clients"), ["a:all", "b:plus"]);
});

Deno.test("trie: add replaces, remove prunes, size counts (filter, subscriber) pairs", () => {
  const trie = new SubscriptionTrie<string, string>();
  assert.equal(trie.add("a/b", "c1", "v1"), true);
  assert.equal(trie.add("a/b", "c1", "v2"), false);
  assert.equal(trie.add("a/+", "c2", "v3"), true);
  assert.equal(trie.size, 2);
  assert.deepEqual(matches(trie, "a/b"), ["c1:v2", "c2:v3"]);
  assert.equal(trie.remove("a/b", "c1"), true);
  assert.equal(trie.remove("a/b", "c1"), false);
  assert.equal(trie.remove("x/y", "c1"), false);
  assert.equal(trie.size, 1);
  assert.deepEqual(matches(trie, "a/b"), ["c2:v3"]);
});

Deno.test("trie: a filter's subscribers go from one to several and back; its node goes with the last", () => {
  const trie = new SubscriptionTrie<string, string>();
  trie.add("a/b", "c1", "v1");
  assert.equal(trie.add("a/b", "c2", "v2"), true);
  assert.equal(trie.add("a/b", "c2", "v3"), false);
  assert.deepEqual(matches(trie, "a/b"), ["c1:v1", "c2:v3"]);
  assert.equal(trie.remove("a/b", "c1"), true);
  assert.deepEqual(matches(trie, "a/b"), ["c2:v3"]);
  assert.equal(trie.remove("a/b", "c2"), true);
  assert.equal(trie.remove("a/b", "c2"), false, "the node was pruned");
  assert.deepEqual([trie.size, matches(trie, "a/b")], [0, []]);
  assert.equal(trie.add("a/b", "c3", "v4"), true);
  assert.equal(trie.add("a/b", "c3", "v5"), false);
  assert.deepEqual(matches(trie, "a/b"), ["c3:v5"]);
});

Deno.test("trie: shared groups are reported once per message with their members in join order", () => {
  const trie = new SubscriptionTrie<string, string>();
  trie.add("jobs/#", "w1", "q1", "g");
  trie.add("jobs/#", "w2", "q1", "g");
  trie.add("jobs/#", "w3", "q0", "other");
  assert.deepEqual(matches(trie, "jobs/1"), ["group g:w1,w2", "group other:w3"]);
  trie.remove("jobs/#", "w1", "g");
  assert.deepEqual(matches(trie, "jobs/1"), ["group g:w2", "group other:w3"]);
  trie.remove("jobs/#", "w2", "g");
  trie.remove("jobs/#", "w3", "other");
  assert.deepEqual(matches(trie, "jobs/1"), []);
  assert.equal(trie.size, 0);
});

Deno.test("topicMatches agrees with the trie on the spec's examples", () => {
  assert.equal(topicMatches("sport/#", "sport"), true);
  assert.equal(topicMatches("sport/+", "sport"), false);
  assert.equal(topicMatches("+/+", "/finance"), true);
  assert.equal(topicMatches("/+", "/finance"), true);
  assert.equal(topicMatches("+", "/finance"), false);
  assert.equal(topicMatches("#", "$SYS/x"), false);
});

function reasonOf(action: () => unknown): number | undefined {
  try {
    action();
    return undefined;
  } catch (error) {
    assert.ok(error instanceof MqttError);
    return error.reasonCode;
  }
}

Deno.test("[MQTT-4.7.3-1] [MQTT-3.3.2-2] topic names: non-empty, no wildcards, level limit (0x90)", () => {
  assert.equal(reasonOf(() => validateTopicName("a/b", 8)), undefined);
  assert.equal(reasonOf(() => validateTopicName("", 8)), 0x90);
  assert.equal(reasonOf(() => validateTopicName("a/+", 8)), 0x90);
  assert.equal(reasonOf(() => validateTopicName("a/#", 8)), 0x90);
  assert.equal(reasonOf(() => validateTopicName("a/b/c", 2)), 0x90);
});

Deno.test("[MQTT-4.7.1-2] [MQTT-4.7.1-3] topic filters: '#' last and alone, '+' alone in its level (0x8F)", () => {
  for (const valid of ["#", "+", "a/+/b", "a/#", "+/+", "/"]) {
    assert.equal(reasonOf(() => validateTopicFilter(valid, 8)), undefined);
  }
  for (const invalid of ["", "a/#/b", "a#", "a/b+", "+a", "##"]) {
    assert.equal(reasonOf(() => validateTopicFilter(invalid, 8)), 0x8f, invalid);
  }
});

Deno.test("[MQTT-4.8.2-1] [MQTT-4.8.2-2] shared filters: $share/<name>/<filter>, name without wildcards or /", () => {
  assert.deepEqual(parseSharedFilter("$share/g/a/+", 8), { group: "g", filter: "a/+" });
  assert.equal(parseSharedFilter("a/b", 8), undefined);
  assert.equal(reasonOf(() => parseSharedFilter("$share//a", 8)), 0x8f);
  assert.equal(reasonOf(() => parseSharedFilter("$share/g+/a", 8)), 0x8f);
  assert.equal(reasonOf(() => parseSharedFilter("$share/g", 8)), 0x8f);
  assert.equal(reasonOf(() => parseSharedFilter("$share/g/a/#/b", 8)), 0x8f);
});

Deno.test("trie: one filter's subscribers join, replace and leave in any order (one, then many, then none)", () => {
  const trie = new SubscriptionTrie<string, string>();
  assert.equal(trie.add("a/b", "x", "1"), true);
  assert.equal(trie.add("a/b", "x", "2"), false, "a second add by the same client replaces");
  assert.deepEqual(matches(trie, "a/b"), ["x:2"]);
  assert.equal(trie.add("a/b", "y", "3"), true);
  assert.equal(trie.add("a/b", "z", "4"), true);
  assert.equal(trie.size, 3);
  assert.deepEqual(matches(trie, "a/b"), ["x:2", "y:3", "z:4"]);
  assert.equal(trie.remove("a/b", "x"), true);
  assert.equal(trie.remove("a/b", "x"), false);
  assert.deepEqual(matches(trie, "a/b"), ["y:3", "z:4"]);
  assert.equal(trie.remove("a/b", "y"), true);
  assert.equal(trie.remove("a/b", "z"), true);
  assert.equal(trie.size, 0);
  assert.deepEqual(matches(trie, "a/b"), []);
  assert.equal(trie.add("a/b", "w", "5"), true, "an emptied filter takes subscribers again");
  assert.deepEqual(matches(trie, "a/b"), ["w:5"]);
  assert.equal(trie.remove("a/b", "w"), true);
  trie.add("a/b/c", "v", "6");
  assert.deepEqual(matches(trie, "a/b/c"), ["v:6"], "the pruned branch was rebuilt");
});

Deno.test("trie: random adds and removes of wildcard filters match as topicMatches says (20 seeds)", () => {
  const levels = ["a", "b", "+", "#", "$x"];
  for (let seed = 1; seed <= 20; seed++) {
    const random = new Random(seed);
    const pick = <T>(items: readonly T[]) => items[random.int(0, items.length - 1)];
    const filter = () => {
      const parts: string[] = [];
      const depth = random.int(1, 3);
      for (let i = 0; i < depth; i++) {
        const level = pick(levels);
        parts.push(level);
        if (level === "#") break; // '#' only last
      }
      return parts.join("/");
    };
    const topic = () => Array.from({ length: random.int(1, 3) }, () => pick(["a", "b", "c", "$x"])).join("/");
    const trie = new SubscriptionTrie<string, string>();
    const model = new Map<string, string>(); // `${clientId} ${filter}` → value
    for (let step = 0; step < 1500; step++) {
      const clientId = pick(["c1", "c2", "c3"]);
      const chosen = filter();
      const key = `${clientId} ${chosen}`;
      if (random.bool(0.55)) {
        trie.add(chosen, clientId, `${chosen}#${step}`);
        model.set(key, `${chosen}#${step}`);
      } else {
        assert.equal(trie.remove(chosen, clientId), model.delete(key), `seed ${seed}, step ${step}`);
      }
      const probe = topic();
      const expected = [...model]
        .filter(([k]) => topicMatches(k.slice(k.indexOf(" ") + 1), probe))
        .map(([k, value]) => `${k.slice(0, k.indexOf(" "))}:${value}`)
        .sort();
      assert.deepEqual(matches(trie, probe), expected, `seed ${seed}, step ${step}, topic ${probe}`);
      assert.equal(trie.size, model.size);
    }
  }
});
