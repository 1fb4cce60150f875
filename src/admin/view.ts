/**
 * Everything the admin API reads from or does to the running broker, behind one interface. Only
 * src/admin/broker_view.ts implements it (from the Broker, the ConnectionManager and the configuration),
 * so a change inside the broker changes that one adapter and nothing else here.
 */
import type {
  Client,
  ClientDetail,
  ClientsQuery,
  ClusterStatus,
  Limits,
  Listener,
  Page,
  PublishRequest,
  ReloadResult,
  RetainedMessage,
  RetainedQuery,
  Session,
  SessionsQuery,
  Stats,
  Subscription,
  SubscriptionsQuery,
} from "./schemas.ts";

/** Why a request the API has validated still cannot be done: the route turns it into a 4xx problem. */
export class AdminRefusal extends Error {
  constructor(
    readonly status: 404 | 409 | 422 | 503,
    message: string,
    /** The request field at fault, when there is one (e.g. "body.topic"). */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** What the admin API sees of the broker. Methods throw {@link AdminRefusal} for requests they cannot do. */
export interface AdminBrokerView {
  clients(query: ClientsQuery): Page<Client>;
  /** One connected client, or undefined. */
  client(clientId: string): ClientDetail | undefined;
  /** Disconnects a connected client (v5: DISCONNECT `reasonCode`); false when it is not connected. */
  kick(clientId: string, reasonCode: number, reason: string): boolean;
  sessions(query: SessionsQuery): Page<Session>;
  /** Ends an offline session; refuses a connected one (409) and an unknown one (404). */
  deleteSession(clientId: string): void;
  subscriptions(query: SubscriptionsQuery): Page<Subscription>;
  /** Reads the payloads of the page's messages from the store where memory has none (for the preview). */
  retained(query: RetainedQuery): Promise<Page<RetainedMessage>>;
  /** Deletes a retained message without notifying subscribers; false when there was none. */
  deleteRetained(topic: string): Promise<boolean>;
  /** Publishes as the broker itself; resolves once a QoS 1/2 message is durable. */
  publish(request: PublishRequest): Promise<number>;
  listeners(): Listener[];
  limits(): Limits;
  stats(): Stats;
  cluster(): ClusterStatus;
  /** Same as SIGHUP. */
  reload(): Promise<ReloadResult>;
}
