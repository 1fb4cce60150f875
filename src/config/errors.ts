/**
 * A configuration problem the operator must fix. The message is complete and addressed to a human:
 * it names where the value came from (`file:line` or an environment variable), the key, and what
 * was expected, e.g. `conf/mqtt.properties:12: mqtt.max_inflight: expected an integer from 1 to 65535, got "abc"`.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}
