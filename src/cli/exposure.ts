/**
 * Start-up decisions that an operator should hear about: secure by default (as Mosquitto 2 is), listen on
 * loopback only while anyone could connect anonymously; name the socket in "address already in use";
 * pick the log format.
 */
import type { Config, ListenerConfig } from "../config/mod.ts";

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * Where a listener really binds. With no credential source configured and `auth.allow_anonymous` unset,
 * anybody could connect: a listener that does not verify client certificates then binds loopback only.
 */
export function exposure(config: Config, listener: ListenerConfig): { host: string; restricted: boolean } {
  const { auth } = config;
  const credentials = auth.passwordFile !== undefined || auth.accessKeysFile !== undefined ||
    auth.scramFile !== undefined || listener.requireClientCert;
  if (credentials || auth.allowAnonymous !== undefined || LOOPBACK.test(listener.host)) {
    return { host: listener.host, restricted: false };
  }
  return { host: listener.host.includes(":") ? "::1" : "127.0.0.1", restricted: true };
}

/** What an operator reads when a socket cannot be bound: which one, and where. */
export function describeListenError(what: string, host: string, port: number, error: unknown): Error {
  const inUse = error instanceof Deno.errors.AddrInUse ||
    (error as { code?: string } | null)?.code === "EADDRINUSE";
  const reason = inUse ? "address already in use" : error instanceof Error ? error.message : String(error);
  const where = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return new Error(`${what} cannot listen on ${where}: ${reason}`, { cause: error });
}

/** `log.format` made concrete: auto is text on a terminal, JSON lines otherwise (journald, pipes). */
export function logFormat(format: Config["log"]["format"]): "json" | "text" {
  if (format !== "auto") return format;
  try {
    return Deno.stdout.isTerminal() ? "text" : "json";
  } catch {
    return "json";
  }
}
