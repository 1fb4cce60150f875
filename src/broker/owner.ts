/** Who owns a session, as the registry stores it: a verified user, or anonymous. */

/** The key a session's owner is stored under: the same for the same verified user, one for all anonymous. */
export function sessionOwner(username: string | undefined): string {
  return username === undefined ? "anonymous" : `user:${username}`;
}

/** The user name of an owner key, undefined for anonymous (or an unknown key). */
export function ownerUsername(owner: string | undefined): string | undefined {
  return owner?.startsWith("user:") ? owner.slice("user:".length) : undefined;
}
