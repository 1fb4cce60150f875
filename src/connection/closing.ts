/**
 * The last steps of a connection the server ends with a reason code (a DISCONNECT, or a CONNACK that
 * refuses). Closing a socket whose input was not all read makes the kernel answer with a reset (RST)
 * and throw away what it had not yet sent: a client still writing — PUBRELs after a burst of QoS 2, say —
 * would then see a broken pipe and never read the reason code. So the server half-closes instead (FIN
 * after the reason code), keeps reading and dropping what the client still sends until the client
 * closes too, and only then, or after a short bound, closes the socket.
 */
import type { ByteStream } from "../transport/mod.ts";

/** Longest wait for the client to close after the server half-closed (up to a second, as issue 12 asks). */
export const LINGER_MS = 1000;

/** Resolves true when `promise` settles within `ms`, false when the time runs out first. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Half-closes `stream`, when the transport can (TCP, and TLS through `Deno.listenTls`), and waits up to
 * `ms` for `inputEnded`: the reader's signal that the client closed its side. Transports without a half
 * close (WebSocket has its own closing handshake; node:tls sockets) return at once.
 */
export async function halfCloseAndLinger(
  stream: ByteStream,
  inputEnded: Promise<void>,
  ms: number = LINGER_MS,
): Promise<void> {
  if (!stream.closeWrite) return;
  try {
    await stream.closeWrite();
  } catch {
    return; // already gone: nothing left to protect
  }
  await settlesWithin(inputEnded, ms);
}
