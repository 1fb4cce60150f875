/**
 * Broker configuration: a Java `.properties` file validated against one zod schema, with
 * `MQTT_PROXY_*` environment overrides. See conf/mqtt.properties for every key.
 */
export { defaultConfig, loadConfig, parseConfig } from "./config.ts";
export { ConfigError } from "./errors.ts";
export { parseProperties } from "./properties.ts";
export type { PropertyEntry } from "./properties.ts";
export { CONFIG_FILE_PATH, renderConfigFile } from "./template.ts";
export type { Config, ListenerConfig } from "./types.ts";
