/**
 * One broker per data directory: an exclusive advisory lock (flock) on `<dir>/mqtt-proxy.lock`, holding
 * the owner's pid. A second broker, in another process or this one, is refused with the pid instead of
 * SQLite's "database is locked"; the lock dies with its process, so a crash leaves nothing to clean up.
 */

/** A held directory lock. */
export interface DirLock {
  release(): void;
}

export async function lockDataDir(dir: string): Promise<DirLock> {
  const path = `${dir}/mqtt-proxy.lock`;
  const file = await Deno.open(path, { read: true, write: true, create: true });
  if (!(await file.tryLock(true))) {
    file.close();
    const owner = (await Deno.readTextFile(path).catch(() => "")).trim();
    throw new Error(`data directory ${dir} is in use by ${owner ? `pid ${owner}` : "another broker"}`);
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  return {
    release() {
      try {
        file.unlockSync();
        file.close();
      } catch { /* already closed */ }
    },
  };
}
