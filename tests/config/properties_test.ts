import assert from "node:assert/strict";
import { ConfigError, parseProperties } from "../../src/config/mod.ts";

function pairs(text: string): [string, string, number][] {
  return parseProperties(text, "test.properties").map(({ key, value, line }) => [key, value, line]);
}

Deno.test("properties: the three separators and surrounding whitespace", () => {
  assert.deepEqual(pairs("a = 1\nb=2\nc: 3\n  d   4  \ne\t=\tfive six\t"), [
    ["a", "1", 1],
    ["b", "2", 2],
    ["c", "3", 3],
    ["d", "4", 4],
    ["e", "five six", 5],
  ]);
});

Deno.test("properties: comments and blank lines are skipped but counted", () => {
  const text = "# comment\n! also a comment\n\n   \n  # indented comment\nkey = value # not a comment\n";
  assert.deepEqual(pairs(text), [["key", "value # not a comment", 6]]);
});

Deno.test("properties: a key without a value is empty", () => {
  assert.deepEqual(pairs("alone\nempty =\n"), [["alone", "", 1], ["empty", "", 2]]);
});

Deno.test("properties: trailing backslash continues onto the next line, keeping the first line number", () => {
  const text = "first = one, \\\n     two, \\\n\tthree\nsecond = 2";
  assert.deepEqual(pairs(text), [["first", "one, two, three", 1], ["second", "2", 4]]);
});

Deno.test("properties: an even number of trailing backslashes does not continue the line", () => {
  assert.deepEqual(pairs("path = c:\\\\\nnext = 1"), [["path", "c:\\", 1], ["next", "1", 2]]);
});

Deno.test("properties: a continuation at end of file is dropped", () => {
  assert.deepEqual(pairs("key = value\\"), [["key", "value", 1]]);
});

Deno.test("properties: a comment line does not continue", () => {
  assert.deepEqual(pairs("# ends with \\\nkey = 1"), [["key", "1", 2]]);
});

Deno.test("properties: escapes in keys and values", () => {
  const text = "my\\ key\\=x = tab\\there\\nnew\\u00e9\\:\\\\ \\ \n";
  assert.deepEqual(pairs(text), [["my key=x", "tab\there\nnewé:\\  ", 1]]);
});

Deno.test("properties: CRLF and CR line endings and a BOM", () => {
  assert.deepEqual(pairs("\uFEFFa = 1\r\nb = 2\rc = 3"), [["a", "1", 1], ["b", "2", 2], ["c", "3", 3]]);
});

Deno.test("properties: duplicates are returned in order for the caller to judge", () => {
  assert.deepEqual(pairs("a = 1\na = 2"), [["a", "1", 1], ["a", "2", 2]]);
});

Deno.test("properties: a malformed unicode escape names the file and line", () => {
  assert.throws(
    () => parseProperties("ok = 1\nbad = \\u12G4", "conf/x.properties"),
    new ConfigError('conf/x.properties:2: malformed \\u escape "\\u12G4": expected 4 hex digits'),
  );
});

Deno.test("properties: a line without a key is an error", () => {
  assert.throws(
    () => parseProperties("\n= value", "conf/x.properties"),
    new ConfigError('conf/x.properties:2: missing key before "="'),
  );
});
