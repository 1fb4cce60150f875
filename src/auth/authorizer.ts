/**
 * The PUBLISH/SUBSCRIBE-time authorizer over an ACL file (grammar in `acl.ts`).
 *
 * `canPublish` and `canReceive` run for every message, so each client's applicable rules are compiled
 * once (with `%u`/`%c` substituted). Its recent publish decisions are remembered per topic (a device
 * publishes to a handful); delivery checks use the client's read rules compiled into regular expressions
 * instead, because a monitoring client's `#` reaches more topics than any per-topic table holds, and a
 * table miss costs more than the test (tests/security/delivery_bench.ts). A client whose rules deny no
 * reading and whose default allows skips the delivery check altogether. The compiled client
 * hangs off the identity object the broker passes (a WeakMap, gone with the connection) and, for callers
 * that build a fresh identity per call, off a bounded table keyed by client id. A reload replaces the
 * whole cache, so every decision after it follows the new rules.
 */
import { readAuthFile } from "./auth_file.ts";
import { type AclPolicy, ClientAcl, emptyAclPolicy, parseAclFile } from "./acl.ts";
import type { Authorizer, ClientIdentity } from "./port.ts";

/** The ACL file and what happens when no rule matches. */
export interface AuthorizerOptions {
  /** Without a file every request gets the default policy. */
  aclFile?: string;
  defaultPolicy: "allow" | "deny";
}

/** An {@link Authorizer} whose ACL file can be reread (on SIGHUP). */
export interface ReloadableAuthorizer extends Authorizer {
  /**
   * Rereads the ACL file. When it is unreadable or invalid this rejects with an `AuthFileError`
   * naming file and line, and the rules loaded before stay in force.
   */
  reload(): Promise<void>;
}

/** Decisions remembered per client and kind; a device publishes to a handful of topics. */
export const DECISIONS_PER_CLIENT = 64;
/** Compiled clients remembered by client id, beyond those attached to live identity objects. */
export const CLIENTS_BY_CLIENT_ID = 16_384;

class CompiledClient {
  readonly publishDecisions = new Map<string, boolean>();
  readonly subscribeDecisions = new Map<string, boolean>();
  readonly receivesEverything: boolean;
  constructor(readonly clientId: string, readonly username: string | undefined, readonly acl: ClientAcl) {
    this.receivesEverything = acl.receivesEverything;
  }
}

function remember<K, V>(map: Map<K, V>, key: K, value: V, capacity: number): void {
  if (map.size >= capacity) map.delete(map.keys().next().value!);
  map.set(key, value);
}

class DecisionCache {
  readonly #byIdentity = new WeakMap<ClientIdentity, CompiledClient>();
  readonly #byClientId = new Map<string, CompiledClient>();

  constructor(private readonly policy: AclPolicy, private readonly defaultAllow: boolean) {}

  client(identity: ClientIdentity): CompiledClient {
    const { clientId, username } = identity;
    const known = this.#byIdentity.get(identity) ?? this.#byClientId.get(clientId);
    if (known && known.clientId === clientId && known.username === username) return known;
    const compiled = new CompiledClient(
      clientId,
      username,
      new ClientAcl(this.policy, identity, this.defaultAllow),
    );
    this.#byClientId.delete(clientId); // a new user name under a known client id replaces the entry
    remember(this.#byClientId, clientId, compiled, CLIENTS_BY_CLIENT_ID);
    // only on compilation: WeakMap.set costs ~0.5 µs and a fresh identity object per call would pay it each time
    this.#byIdentity.set(identity, compiled);
    return compiled;
  }
}

async function loadPolicy(aclFile: string | undefined): Promise<AclPolicy> {
  return aclFile === undefined ? emptyAclPolicy() : parseAclFile(await readAuthFile(aclFile), aclFile);
}

/** Loads the ACL file and returns the authorizer; rejects with an `AuthFileError` when the file is bad. */
export async function createAuthorizer(options: AuthorizerOptions): Promise<ReloadableAuthorizer> {
  const defaultAllow = options.defaultPolicy === "allow";
  let cache = new DecisionCache(await loadPolicy(options.aclFile), defaultAllow);
  return {
    canPublish(client, topic) {
      const compiled = cache.client(client);
      let allowed = compiled.publishDecisions.get(topic);
      if (allowed === undefined) {
        allowed = compiled.acl.canPublish(topic);
        remember(compiled.publishDecisions, topic, allowed, DECISIONS_PER_CLIENT);
      }
      return allowed;
    },
    canSubscribe(client, topicFilter) {
      const compiled = cache.client(client);
      let allowed = compiled.subscribeDecisions.get(topicFilter);
      if (allowed === undefined) {
        allowed = compiled.acl.canSubscribe(topicFilter);
        remember(compiled.subscribeDecisions, topicFilter, allowed, DECISIONS_PER_CLIENT);
      }
      return allowed;
    },
    canReceive(client, topic) {
      const compiled = cache.client(client);
      return compiled.receivesEverything || compiled.acl.canReceive(topic);
    },
    receiverFor(client) {
      let seen: DecisionCache | undefined;
      let compiled: CompiledClient | undefined;
      return (topic) => {
        // no identity lookup per delivery: the compiled client is kept until a reload replaces the cache
        if (seen !== cache) [seen, compiled] = [cache, cache.client(client)];
        return compiled!.receivesEverything || compiled!.acl.canReceive(topic);
      };
    },
    async reload() {
      cache = new DecisionCache(await loadPolicy(options.aclFile), defaultAllow);
    },
  };
}
