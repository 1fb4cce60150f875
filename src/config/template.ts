import type { KeySpec } from "./keys.ts";
import { listenerKeys, type SectionOf, sectionTitles, settingKeys } from "./schema.ts";

/** Where the generated file is committed, relative to the repository root. */
export const CONFIG_FILE_PATH = "conf/mqtt.properties";

/** The listener keys the shipped file sets, so that the broker listens where operators expect. */
const EXPLICIT_LISTENER_FIELDS = new Set(["type", "host", "port"]);

const WIDTH = 100;
const RULE = "# " + "-".repeat(WIDTH - 2);

const HEADER = [
  "mqtt-proxy configuration.",
  "",
  "Generated from src/config/schema.ts by scripts/gen_config.ts: change the schema and rerun the script " +
  "rather than editing this copy (CI compares the two).",
  "",
  "Syntax is Java .properties: key = value, # or ! starts a comment, a trailing \\ continues the line. " +
  "A commented line '# key = value' shows the key's default; uncomment it to change the value.",
  "",
  "Any key can also be set by the environment variable MQTT_PROXY_<KEY>, upper case with dots written as __, " +
  "e.g. MQTT_PROXY_MQTT__MAX_INFLIGHT=64 or MQTT_PROXY_LISTENER__DEFAULT__PORT=1884; the environment wins.",
];

/** The text of conf/mqtt.properties: every key with its description, accepted values and default. */
export function renderConfigFile(): string {
  const lines = [...comment(HEADER), ""];
  lines.push(...sectionHeading("listener"));
  for (const [field, spec] of Object.entries(listenerKeys)) {
    lines.push(...keyBlock(`listener.default.${field}`, spec, EXPLICIT_LISTENER_FIELDS.has(field)));
  }
  let section = "";
  for (const [key, spec] of Object.entries(settingKeys)) {
    const keySection = key.slice(0, key.indexOf(".")) as SectionOf<keyof typeof settingKeys>;
    if (keySection !== section) lines.push(...sectionHeading(keySection));
    section = keySection;
    lines.push(...keyBlock(key, spec, false));
  }
  return lines.join("\n");
}

function sectionHeading(section: keyof typeof sectionTitles): string[] {
  return [RULE, ...comment([sectionTitles[section]]), RULE, ""];
}

function keyBlock(key: string, spec: KeySpec, explicit: boolean): string[] {
  const fallback = spec.schema.parse(undefined);
  const shown = fallback === undefined ? "" : String(fallback);
  const defaultText = fallback === undefined ? "unset" : shown;
  const assignment = `${key} = ${shown}`.trimEnd();
  return [
    ...comment([spec.description, `Expected: ${spec.expected}. Default: ${defaultText}.`]),
    explicit ? assignment : `# ${assignment}`,
    "",
  ];
}

/** Turns paragraphs into `#` lines wrapped at {@link WIDTH} columns. */
function comment(paragraphs: string[]): string[] {
  const lines: string[] = [];
  for (const paragraph of paragraphs) {
    let line = "#";
    for (const word of paragraph.split(" ").filter((part) => part !== "")) {
      if (line.length + 1 + word.length > WIDTH && line !== "#") {
        lines.push(line);
        line = "#";
      }
      line += " " + word;
    }
    lines.push(line);
  }
  return lines;
}
