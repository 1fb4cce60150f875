/**
 * Structured logging: one JSON object per line on stdout, keyed by a stable event name
 * (`listener.started`, `client.disconnected`, ...) so that journald and log pipelines can filter on it.
 */

/** Severity of a log event, from least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Writes log events at or above its level; the level can be changed at runtime (config reload). */
export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line; it shares this logger's level, so setting either changes both. */
  child(fields: Record<string, unknown>): Logger;
  level: LogLevel;
}

/** How `createLogger` is set up; `write` and `now` exist so tests can capture lines and freeze time. */
export interface LoggerOptions {
  level: LogLevel;
  /** JSON lines (the default, for journald and pipelines) or human-readable text lines (terminals). */
  format?: "json" | "text";
  /** Receives one complete JSON line without the trailing newline; defaults to stdout. */
  write?: (line: string) => void;
  now?: () => Date;
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Keys every line starts with; a field of the same name cannot overwrite them. */
const RESERVED_KEYS = new Set(["ts", "level", "event"]);

/** Shared by a logger and all its children, so a level change reaches every one of them. */
interface LevelState {
  rank: number;
  level: LogLevel;
}

/** Creates the JSON-line logger; see {@link Logger}. */
/**
 * Whether `logger` writes lines of `level`: lets a caller skip building the fields of a line nobody reads. A
 * logger without a known level (a test's stand-in) writes everything.
 */
export function logsAt(logger: Logger, level: LogLevel): boolean {
  const rank = LEVEL_RANK[logger.level];
  return rank === undefined || LEVEL_RANK[level] >= rank;
}

export function createLogger(options: LoggerOptions): Logger {
  const state: LevelState = { level: options.level, rank: LEVEL_RANK[options.level] };
  const format = options.format === "text" ? formatText : formatLine;
  return buildLogger(state, options.write ?? writeToStdout, options.now ?? (() => new Date()), {}, format);
}

type Formatter = (time: Date, level: LogLevel, event: string, fields: Record<string, unknown>) => string;

function buildLogger(
  state: LevelState,
  write: (line: string) => void,
  now: () => Date,
  context: Record<string, unknown>,
  format: Formatter,
): Logger {
  const emit = (level: LogLevel, event: string, fields?: Record<string, unknown>): void => {
    if (LEVEL_RANK[level] < state.rank) return;
    write(format(now(), level, event, { ...context, ...fields }));
  };
  return {
    debug: (event, fields) => emit("debug", event, fields),
    info: (event, fields) => emit("info", event, fields),
    warn: (event, fields) => emit("warn", event, fields),
    error: (event, fields) => emit("error", event, fields),
    child: (fields) => buildLogger(state, write, now, { ...context, ...fields }, format),
    get level(): LogLevel {
      return state.level;
    },
    set level(level: LogLevel) {
      state.level = level;
      state.rank = LEVEL_RANK[level];
    },
  };
}

function formatLine(time: Date, level: LogLevel, event: string, fields: Record<string, unknown>): string {
  const record: Record<string, unknown> = { ts: time.toISOString(), level, event };
  for (const [name, value] of Object.entries(fields)) {
    if (!RESERVED_KEYS.has(name)) record[name] = value;
  }
  try {
    return JSON.stringify(record, safeValue);
  } catch (error) {
    // A circular field must not take the broker down, nor silently drop the event.
    return JSON.stringify({
      ts: record.ts,
      level,
      event,
      log_error: `fields not serialisable: ${error instanceof Error ? error.message : String(error)}`,
    });
  }
}

/**
 * One line for people: `2024-05-01 10:00:00.000 INFO  client.connected clientId=dev-1 user=alice ...`.
 * Values with spaces or quotes are written as JSON strings; objects as JSON.
 */
function formatText(time: Date, level: LogLevel, event: string, fields: Record<string, unknown>): string {
  const parts = [time.toISOString().replace("T", " ").replace("Z", ""), level.toUpperCase().padEnd(5), event];
  for (const [name, raw] of Object.entries(fields)) {
    if (RESERVED_KEYS.has(name) || raw === undefined) continue;
    const value = safeValue(name, raw);
    let text: string;
    try {
      text = typeof value === "string" && /^[^\s"=]+$/.test(value)
        ? value
        : JSON.stringify(value, safeValue) ?? "";
    } catch {
      text = "(not printable)";
    }
    parts.push(`${name}=${text}`);
  }
  return parts.join(" ");
}

/** Keeps secrets and payloads out of the logs and makes values JSON cannot encode printable. */
function safeValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (value instanceof Uint8Array) return value.length;
  if (typeof value === "bigint") return value.toString();
  return value;
}

/**
 * Lets `emit` run at most once per `intervalMs`, telling it how many calls were skipped since it last ran:
 * a failure that repeats (an accept at EMFILE, retried every 100 ms) is logged, not flooded.
 */
export function rateLimited<T>(
  intervalMs: number,
  emit: (value: T, suppressed: number) => void,
  now: () => number = () => performance.now(),
): (value: T) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (value) => {
    const time = now();
    if (time - last < intervalMs) {
      suppressed++;
      return;
    }
    last = time;
    emit(value, suppressed);
    suppressed = 0;
  };
}

const encoder = new TextEncoder();

function writeToStdout(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}
