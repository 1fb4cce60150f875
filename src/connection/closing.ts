/**
 * The last steps of a connection. Closing a socket whose input was not all read makes the kernel answer
 * with a reset (RST) and throw away what it had not yet sent: a client still writing — PUBRELs after a
 * burst of QoS 2, say — would then see a broken pipe and never read the reason code of the server's
 * DISCONNECT or refusing CONNACK. And closing a socket while its read is pending fails that read with an
 * `Interrupted` error, built with its stack (about 3 KB of garbage per connection): after a client's
 * DISCONNECT, the client closes its side next anyway. So in both cases the server half-closes (FIN after
 * its last packet), keeps reading and dropping what the client still sends until the client closes too —
 * the pending read then ends with the end of the stream — and only then, or after at most LINGER_MS,
 * closes the socket. The connection manager's sweep enforces the bound: no timer per connection.
 */

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
