import { z } from "zod";
import { ConfigError } from "./errors.ts";
import type { KeySpec } from "./keys.ts";
import { parseProperties } from "./properties.ts";
import {
  LISTENER_NAME,
  listenerKeys,
  listenerSchema,
  type SectionOf,
  settingKeys,
  settingsSchema,
} from "./schema.ts";
import type { Config, ListenerConfig } from "./types.ts";

/** Prefix of the environment variables that override keys: `MQTT_PROXY_MQTT__MAX_INFLIGHT` → `mqtt.max_inflight`. */
const ENV_PREFIX = "MQTT_PROXY_";

/** The few keys whose TypeScript name is not the plain camelCase of the key. */
const FIELD_NAMES = { max_keepalive: "maxKeepAlive" } as const;

/** `max_inflight` → `maxInflight`; a deeper key such as `rocketmq.endpoints` → `rocketmqEndpoints`. */
type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${CamelCase<Head>}${Capitalize<CamelCase<Tail>>}`
  : S extends `${infer Head}.${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;
type FieldName<S extends string> = S extends keyof typeof FIELD_NAMES ? (typeof FIELD_NAMES)[S]
  : CamelCase<S>;
type Fields<T> = { [K in keyof T as K extends string ? FieldName<K> : never]: T[K] };
type Sections<Flat> = {
  [S in SectionOf<keyof Flat & string>]: {
    [K in keyof Flat as K extends `${S}.${infer Name}` ? FieldName<Name> : never]: Flat[K];
  };
};

/** A value from the file or the environment, remembering its source for error messages. */
interface Setting {
  readonly key: string;
  readonly raw: string;
  /** `file:line` or the environment variable's name. */
  readonly origin: string;
}

interface ListenerSettings {
  readonly values: Record<string, unknown>;
  readonly origins: Record<string, string>;
}

/**
 * Reads and validates a `.properties` config file, with `MQTT_PROXY_*` environment overrides taken
 * from `env` (by default the process environment, when readable). Throws {@link ConfigError}.
 */
export async function loadConfig(
  path: string,
  env: Record<string, string> = processEnvironment(),
): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Error
      ? error.message.replace(/ \(os error \d+\).*$/s, "")
      : String(error);
    throw new ConfigError(`cannot read config file ${path}: ${reason}`);
  }
  return parseConfig(text, path, env);
}

/**
 * Validates config text; `fileName` only labels error messages. An unknown key, a value of the wrong
 * type or out of range, a duplicate key or an incomplete listener throws {@link ConfigError}.
 * Variables of `env` named `MQTT_PROXY_<KEY>` (upper case, dots as `__`) override the file.
 */
export function parseConfig(text: string, fileName: string, env: Record<string, string> = {}): Config {
  const settings = [...fileSettings(text, fileName), ...environmentSettings(env)];
  const flat: Record<string, unknown> = {};
  const listeners = new Map<string, ListenerSettings>();
  for (const setting of settings) {
    const listenerKey = /^listener\.([^.]*)\.(.+)$/.exec(setting.key);
    if (listenerKey) {
      const [, name, field] = listenerKey;
      const spec = specOf(listenerKeys, field);
      if (!LISTENER_NAME.test(name) || spec === undefined) throw unknownKey(setting);
      const listener = listeners.get(name) ?? { values: {}, origins: {} };
      listeners.set(name, listener);
      listener.values[field] = readValue(setting, spec);
      listener.origins[field] = setting.origin;
      continue;
    }
    const spec = specOf(settingKeys, setting.key);
    if (spec === undefined) throw unknownKey(setting);
    flat[setting.key] = readValue(setting, spec);
  }
  const sections: Omit<Config, "listeners"> = toSections(settingsSchema.parse(flat));
  return { listeners: buildListeners(listeners), ...sections };
}

/** The configuration an empty file gives. */
export function defaultConfig(): Config {
  return parseConfig("", "(defaults)");
}

function processEnvironment(): Record<string, string> {
  return Deno.permissions.querySync({ name: "env" }).state === "granted" ? Deno.env.toObject() : {};
}

function fileSettings(text: string, fileName: string): Setting[] {
  const firstLines = new Map<string, number>();
  return parseProperties(text, fileName).map(({ key, value, line }) => {
    const firstLine = firstLines.get(key);
    if (firstLine !== undefined) {
      throw new ConfigError(`${fileName}:${line}: ${key}: duplicate key, already set on line ${firstLine}`);
    }
    firstLines.set(key, line);
    return { key, raw: value, origin: `${fileName}:${line}` };
  });
}

function environmentSettings(env: Record<string, string>): Setting[] {
  return Object.entries(env)
    .filter(([name]) => name.startsWith(ENV_PREFIX))
    .map(([name, raw]) => ({
      key: name.slice(ENV_PREFIX.length).toLowerCase().replaceAll("__", "."),
      raw: raw.trim(),
      origin: name,
    }));
}

function specOf(specs: Record<string, KeySpec>, name: string): KeySpec | undefined {
  return Object.hasOwn(specs, name) ? specs[name] : undefined;
}

/** Turns the raw text into the key's type; text that does not convert is left for zod to reject. */
function readValue(setting: Setting, spec: KeySpec): unknown {
  const { raw } = setting;
  if (raw === "" && spec.schema instanceof z.ZodOptional) return undefined;
  let value: unknown = raw;
  if (spec.kind === "integer" && /^[+-]?\d+$/.test(raw)) value = Number(raw);
  if (spec.kind === "boolean" && /^(true|false)$/i.test(raw)) value = raw.toLowerCase() === "true";
  const result = spec.schema.safeParse(value);
  if (!result.success) {
    throw new ConfigError(
      `${setting.origin}: ${setting.key}: expected ${spec.expected}, got ${JSON.stringify(raw)}`,
    );
  }
  return result.data;
}

function unknownKey(setting: Setting): ConfigError {
  const listenerName = /^listener\.([^.]*)\./.exec(setting.key)?.[1];
  let hint: string;
  if (listenerName !== undefined && !LISTENER_NAME.test(listenerName)) {
    hint = `listener names may contain only a-z, 0-9, _ and -`;
  } else if (listenerName !== undefined) {
    hint = `a listener takes ${Object.keys(listenerKeys).join(", ")}`;
  } else {
    const nearest = nearestKey(setting.key);
    hint = nearest ? `did you mean ${nearest}?` : "see conf/mqtt.properties for the known keys";
  }
  return new ConfigError(`${setting.origin}: ${setting.key}: unknown key (${hint})`);
}

/** The known key a typo most likely meant: at most 3 edits away. */
function nearestKey(key: string): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  for (const candidate of Object.keys(settingKeys)) {
    const distance = editDistance(key, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}

function buildListeners(listeners: Map<string, ListenerSettings>): ListenerConfig[] {
  if (listeners.size === 0) return [{ name: "default", ...toFields(listenerSchema.parse({})) }];
  return [...listeners].map(([name, { values, origins }]) => {
    const result = listenerSchema.safeParse(values);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new ConfigError(`${origins.type}: listener.${name}.${String(issue.path[0])}: ${issue.message}`);
    }
    return { name, ...toFields(result.data) };
  });
}

function fieldName(name: string): string {
  return Object.hasOwn(FIELD_NAMES, name)
    ? FIELD_NAMES[name as keyof typeof FIELD_NAMES]
    : name.replace(/[_.]([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

/** Renames keys to their TypeScript field names, leaving unset optional keys out. */
function toFields<T extends Record<string, unknown>>(values: T): Fields<T> {
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) fields[fieldName(name)] = value;
  }
  return fields as Fields<T>;
}

/** Groups `<section>.<key>` values into one object per section with TypeScript field names. */
function toSections<T extends Record<string, unknown>>(flat: T): Sections<T> {
  const sections: Record<string, Record<string, unknown>> = {};
  for (const [key, value] of Object.entries(flat)) {
    const dot = key.indexOf(".");
    const section = (sections[key.slice(0, dot)] ??= {});
    if (value !== undefined) section[fieldName(key.slice(dot + 1))] = value;
  }
  return sections as Sections<T>;
}
