/**
 * A node's two gRPC clients, a producer and a simple consumer, started and shut down together.
 */
import { Producer, SimpleConsumer } from "rocketmq-client-nodejs";
import grpcStubs from "rocketmq-client-nodejs/proto/apache/rocketmq/v2/service_grpc_pb.js";
import { clientLogger, type ResolvedOptions, withTimeout } from "./options.ts";

/** grpc-js reconnect backoff for the proxy's address: 250 ms doubling to at most 2 s. */
const CHANNEL_OPTIONS = { "grpc.initial_reconnect_backoff_ms": 250, "grpc.max_reconnect_backoff_ms": 2000 };
const PATCHED = Symbol.for("mqtt-proxy.rocketmq.channel-options");

/**
 * After the proxy comes back, the client reconnects on grpc-js's backoff, which grows 1.6x per failed
 * attempt up to 120 s; the backoff lives in grpc-js's global subchannel pool, so even a new client waits
 * it out. Measured: sends resumed 1.4 s after a 9 s proxy outage but 7.6–11 s after a 35 s one, and a
 * longer outage can add up to 2 minutes. rocketmq-client-nodejs 1.0.8 passes no channel options, and its
 * RpcClient looks `MessagingServiceClient` up on this module's exports at each construction, so a
 * subclass put there gives every channel the options above. Idempotent.
 */
function shortenReconnectBackoff(): void {
  type StubConstructor = new (address: string, credentials: unknown, options?: object) => GrpcStub;
  const stubs = grpcStubs as unknown as Record<string | symbol, unknown> & {
    MessagingServiceClient: StubConstructor;
  };
  if (stubs[PATCHED]) return;
  const Base = stubs.MessagingServiceClient;
  stubs.MessagingServiceClient = class extends Base {
    constructor(address: string, credentials: unknown, options: object = {}) {
      super(address, credentials, { ...CHANNEL_OPTIONS, ...options });
      openStubs.set(this, address);
    }
    override close(): void {
      openStubs.delete(this);
      super.close();
    }
  };
  stubs[PATCHED] = true;
}

/** What is used of a grpc-js client stub. */
interface GrpcStub {
  getChannel(): { getConnectivityState(tryToConnect: boolean): number };
  close(): void;
}
/** grpc-js `ConnectivityState.TRANSIENT_FAILURE`: the last attempt to connect failed. */
const TRANSIENT_FAILURE = 3;
/** Every stub made and not closed, with the address it connects to (the clients make one per endpoint). */
const openStubs = new Map<GrpcStub, string>();

/**
 * Whether a channel of this process to one of `endpoints` (`host:port;host:port`) is failing to connect.
 * An idle channel is asked to connect, so a proxy that went away while nothing was sent shows up too. A
 * log read from the broker sends only what its node appends: this is how it notices that appends would
 * fail when it has none under way.
 */
export function proxyUnreachable(endpoints: string): boolean {
  const addresses = new Set(endpoints.split(/[;,]/));
  for (const [stub, address] of openStubs) {
    if (!address.split(",").some((one) => addresses.has(one))) continue;
    if (stub.getChannel().getConnectivityState(true) === TRANSIENT_FAILURE) return true;
  }
  return false;
}
shortenReconnectBackoff();

export interface Clients {
  producer: Producer;
  /** Only when the log is read through the proxy (no name server to find the broker by). */
  consumer?: SimpleConsumer;
}

/**
 * Starts the producer and, when `consumer`, the simple consumer; the client's own startup() has no
 * timeout, so each is bounded by startTimeoutMs.
 */
export async function startClients(o: ResolvedOptions, want: { consumer: boolean }): Promise<Clients> {
  const base = {
    endpoints: o.endpoints,
    namespace: o.namespace,
    sessionCredentials: o.credentials,
    requestTimeout: o.requestTimeoutMs,
    logger: clientLogger(o.logger),
  };
  const clients: Clients = {
    // maxAttempts 1: the appender retries with backoff and a deadline of its own.
    producer: new Producer({ ...base, topics: [o.topic], maxAttempts: 1 }),
    consumer: want.consumer
      ? new SimpleConsumer({
        ...base,
        consumerGroup: o.consumerGroup,
        subscriptions: new Map([[o.topic, "*"]]),
        awaitDuration: o.awaitMs,
        maxRetryAttempts: 1,
      })
      : undefined,
  };
  const ms = o.startTimeoutMs;
  try {
    await Promise.all([
      withTimeout(clients.producer.startup(), ms, `the producer did not start within ${ms} ms`),
      clients.consumer &&
      withTimeout(clients.consumer.startup(), ms, `the consumer did not start within ${ms} ms`),
    ]);
  } catch (error) {
    await shutdownClients(clients, o);
    throw error;
  }
  return clients;
}

/** Shuts both down; bounded, since shutdown() first tells a proxy that may be gone. */
export async function shutdownClients(clients: Clients | undefined, o: ResolvedOptions): Promise<void> {
  if (!clients) return;
  const ms = o.requestTimeoutMs + 1000;
  await Promise.allSettled(
    [clients.producer, ...clients.consumer ? [clients.consumer] : []].map((client) =>
      withTimeout(client.shutdown(), ms, "shutdown timed out")
    ),
  );
}
