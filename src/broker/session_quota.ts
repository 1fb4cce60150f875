/** Caps on sessions; 0 = unlimited. */
export interface SessionQuotaLimits {
  /** Sessions at once, connected and offline together. */
  maxSessions: number;
  /** Persistent sessions one authenticated user name may own. */
  maxPersistentPerUser: number;
  /** Persistent sessions clients from one IP address may own. */
  maxPersistentPerAddress: number;
}

/** Who opened a session: the authenticated user name (if any) and the client's IP address. */
export interface SessionOwner {
  username?: string;
  /** Unknown for a session recovered from storage until its client connects again. */
  address?: string;
}

/**
 * Counts persistent sessions per owner, so that one user or one address (an anonymous client above all)
 * cannot fill the broker with sessions that outlive their connections. A session is counted for the owner
 * of its latest connection while it is persistent. Sessions recovered from storage count for their stored
 * owner; their address is known once their client connects again. Which owner a session is counted for is
 * the caller's to keep (the registry keeps it with the session: no map by client id here).
 */
export class SessionQuota {
  readonly #byUser = new Map<string, number>();
  readonly #byAddress = new Map<string, number>();

  constructor(private readonly limits: SessionQuotaLimits) {}

  get countsAddresses(): boolean {
    return this.limits.maxPersistentPerAddress > 0;
  }

  /**
   * Why a CONNECT may not have its session, or undefined when it may. `sessions` is the number held now;
   * `exists` whether this client id already has one (a reconnect never counts as one more), `current` the
   * owner that session is counted for.
   */
  refusal(
    current: SessionOwner | undefined,
    exists: boolean,
    persistent: boolean,
    owner: SessionOwner,
    sessions: number,
  ): string | undefined {
    const { maxSessions, maxPersistentPerUser, maxPersistentPerAddress } = this.limits;
    if (!exists && maxSessions > 0 && sessions >= maxSessions) return `more than ${maxSessions} sessions`;
    if (!persistent) return undefined;
    const user = owner.username;
    if (
      user !== undefined && maxPersistentPerUser > 0 && current?.username !== user &&
      (this.#byUser.get(user) ?? 0) >= maxPersistentPerUser
    ) {
      return `user ${user} has ${maxPersistentPerUser} persistent sessions`;
    }
    const address = owner.address;
    if (
      address !== undefined && maxPersistentPerAddress > 0 && current?.address !== address &&
      (this.#byAddress.get(address) ?? 0) >= maxPersistentPerAddress
    ) {
      return `address ${owner.address} has ${maxPersistentPerAddress} persistent sessions`;
    }
    return undefined;
  }

  /**
   * The owner a persistent session opened by `owner` is counted for: `owner`, or undefined while neither
   * per-owner cap is set, when there is nothing to count (and an offline session keeps no owner, 40 B).
   */
  countedOwner(owner: SessionOwner): SessionOwner | undefined {
    const { maxPersistentPerUser, maxPersistentPerAddress } = this.limits;
    return maxPersistentPerUser > 0 || maxPersistentPerAddress > 0 ? owner : undefined;
  }

  /** A session counted for `previous` (if any) is counted for `owner` (if any) from now on. */
  reassign(previous: SessionOwner | undefined, owner: SessionOwner | undefined): void {
    if (previous) {
      if (previous.address !== undefined) decrement(this.#byAddress, previous.address);
      if (previous.username !== undefined) decrement(this.#byUser, previous.username);
    }
    if (!owner) return;
    if (owner.address !== undefined) {
      this.#byAddress.set(owner.address, (this.#byAddress.get(owner.address) ?? 0) + 1);
    }
    if (owner.username !== undefined) {
      this.#byUser.set(owner.username, (this.#byUser.get(owner.username) ?? 0) + 1);
    }
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const count = (counts.get(key) ?? 0) - 1;
  if (count > 0) counts.set(key, count);
  else counts.delete(key);
}

/** The IP address of a `host:port` remote address (IPv6 hosts contain colons too). */
export function addressOf(remoteAddress: string): string {
  const colon = remoteAddress.lastIndexOf(":");
  return colon > 0 ? remoteAddress.slice(0, colon) : remoteAddress;
}
