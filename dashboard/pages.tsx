/// <reference lib="dom" />
/** The browsers: clients (search, paging, kick), sessions (delete offline ones), subscriptions, retained. */
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, type Page, query } from "./api.ts";

const PAGE_SIZE = 20;

interface Column<T> {
  title: string;
  cell(row: T): ComponentChildren;
}

/**
 * A table over a paged API list: search fields, previous/next by cursor, a refresh every few seconds so
 * new clients appear without a reload, and a message line for actions.
 */
function PagedTable<T>(props: {
  id: string;
  path: string;
  filters: { name: string; label: string; options?: string[] }[];
  columns: Column<T>[];
  rowKey(row: T): string;
  actions?: (row: T, done: (message: string) => void) => ComponentChildren;
}) {
  const [filters, setFilters] = useState<Record<string, string>>({});
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [page, setPage] = useState<Page<T>>({ data: [], nextCursor: null });
  const [message, setMessage] = useState("");
  const [tick, setTick] = useState(0);
  const cursor = cursors[cursors.length - 1];
  useEffect(() => {
    let live = true;
    call<Page<T>>("GET", `${props.path}${query({ ...filters, cursor, limit: PAGE_SIZE })}`)
      .then((next) => live && setPage(next), (error) => live && setMessage(String(error.message ?? error)));
    return () => {
      live = false;
    };
  }, [filters, cursor, tick]);
  useEffect(() => {
    const timer = setInterval(() => setTick((n) => n + 1), 2000);
    return () => clearInterval(timer);
  }, []);
  const done = (text: string) => {
    setMessage(text);
    setTick((n) => n + 1);
  };
  return (
    <div id={props.id}>
      <form class="filters" onSubmit={(event) => event.preventDefault()}>
        {props.filters.map((filter) =>
          filter.options
            ? (
              <label key={filter.name}>
                {filter.label}{" "}
                <select
                  name={filter.name}
                  onChange={(event) => {
                    setCursors([undefined]);
                    setFilters({ ...filters, [filter.name]: (event.target as HTMLSelectElement).value });
                  }}
                >
                  {filter.options.map((option) => (
                    <option key={option} value={option}>{option || "any"}</option>
                  ))}
                </select>
              </label>
            )
            : (
              <label key={filter.name}>
                {filter.label}{" "}
                <input
                  name={filter.name}
                  id={`${props.id}-${filter.name}`}
                  onInput={(event) => {
                    setCursors([undefined]);
                    setFilters({ ...filters, [filter.name]: (event.target as HTMLInputElement).value });
                  }}
                />
              </label>
            )
        )}
      </form>
      {message && <p class="notice" role="status">{message}</p>}
      <table>
        <thead>
          <tr>
            {props.columns.map((column) => <th key={column.title}>{column.title}</th>)}
            {props.actions && <th />}
          </tr>
        </thead>
        <tbody>
          {page.data.length === 0 && (
            <tr>
              <td colSpan={props.columns.length + 1} class="muted">nothing here</td>
            </tr>
          )}
          {page.data.map((row) => (
            <tr key={props.rowKey(row)} data-key={props.rowKey(row)}>
              {props.columns.map((column) => <td key={column.title}>{column.cell(row)}</td>)}
              {props.actions && <td>{props.actions(row, done)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
      <div class="pager">
        <button
          type="button"
          disabled={cursors.length === 1}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          ← Previous
        </button>
        <span class="muted">page {cursors.length}</span>
        <button
          type="button"
          disabled={!page.nextCursor}
          onClick={() => setCursors([...cursors, page.nextCursor!])}
        >
          Next →
        </button>
      </div>
    </div>
  );
}

async function act(
  done: (message: string) => void,
  method: string,
  path: string,
  ok: string,
  body?: unknown,
) {
  try {
    await call(method, path, body);
    done(ok);
  } catch (error) {
    done(`failed: ${error instanceof Error ? error.message : error}`);
  }
}

interface Client {
  clientId: string;
  username: string | null;
  remoteAddress: string;
  listener: string;
  protocol: string;
  connectedAt: string;
  subscriptions: number;
  inflight: number;
  queued: number;
}

export function ClientsPage({ canWrite }: { canWrite: boolean }) {
  return (
    <>
      <h2>Clients</h2>
      <PagedTable<Client>
        id="clients"
        path="/clients"
        filters={[{ name: "clientId", label: "Client id contains" }, { name: "username", label: "User" }, {
          name: "protocol",
          label: "Protocol",
          options: ["", "3.1", "3.1.1", "5.0"],
        }]}
        rowKey={(client) => client.clientId}
        columns={[
          { title: "Client id", cell: (c) => <code>{c.clientId}</code> },
          { title: "User", cell: (c) => c.username ?? "—" },
          { title: "Address", cell: (c) => c.remoteAddress },
          { title: "Listener", cell: (c) => c.listener },
          { title: "MQTT", cell: (c) => c.protocol },
          { title: "Since", cell: (c) => new Date(c.connectedAt).toLocaleTimeString() },
          { title: "Subs", cell: (c) => c.subscriptions },
          { title: "In flight / queued", cell: (c) => `${c.inflight} / ${c.queued}` },
        ]}
        actions={canWrite
          ? (client, done) => (
            <button
              type="button"
              class="danger kick"
              onClick={() =>
                confirm(`Disconnect ${client.clientId}?`) &&
                act(
                  done,
                  "POST",
                  `/clients/${encodeURIComponent(client.clientId)}/kick`,
                  `kicked ${client.clientId}`,
                  {},
                )}
            >
              Kick
            </button>
          )
          : undefined}
      />
    </>
  );
}

interface Session {
  clientId: string;
  connected: boolean;
  expiryInterval: number;
  subscriptions: number;
  inflight: number;
  queued: number;
}

export function SessionsPage({ canWrite }: { canWrite: boolean }) {
  return (
    <>
      <h2>Sessions</h2>
      <PagedTable<Session>
        id="sessions"
        path="/sessions"
        filters={[{ name: "clientId", label: "Client id contains" }, {
          name: "connected",
          label: "Connected",
          options: ["", "true", "false"],
        }]}
        rowKey={(session) => session.clientId}
        columns={[
          { title: "Client id", cell: (s) => <code>{s.clientId}</code> },
          { title: "Connected", cell: (s) => (s.connected ? "yes" : "no") },
          {
            title: "Expiry",
            cell: (s) => (s.expiryInterval === 4294967295 ? "never" : `${s.expiryInterval} s`),
          },
          { title: "Subs", cell: (s) => s.subscriptions },
          { title: "In flight / queued", cell: (s) => `${s.inflight} / ${s.queued}` },
        ]}
        actions={canWrite
          ? (session, done) =>
            !session.connected && (
              <button
                type="button"
                class="danger"
                onClick={() =>
                  confirm(`Delete the session of ${session.clientId}?`) &&
                  act(
                    done,
                    "DELETE",
                    `/sessions/${encodeURIComponent(session.clientId)}`,
                    `deleted ${session.clientId}`,
                  )}
              >
                Delete
              </button>
            )
          : undefined}
      />
    </>
  );
}

interface Subscription {
  clientId: string;
  topicFilter: string;
  qos: number;
  shareGroup: string | null;
}

export function SubscriptionsPage(_: { canWrite: boolean }) {
  return (
    <>
      <h2>Subscriptions</h2>
      <PagedTable<Subscription>
        id="subscriptions"
        path="/subscriptions"
        filters={[{ name: "clientId", label: "Client id" }, { name: "topic", label: "Reached by topic" }, {
          name: "filter",
          label: "Exact filter",
        }]}
        rowKey={(s) => `${s.clientId} ${s.topicFilter}`}
        columns={[
          { title: "Client id", cell: (s) => <code>{s.clientId}</code> },
          { title: "Filter", cell: (s) => <code>{s.topicFilter}</code> },
          { title: "QoS", cell: (s) => s.qos },
          { title: "Share group", cell: (s) => s.shareGroup ?? "—" },
        ]}
      />
    </>
  );
}

interface Retained {
  topic: string;
  qos: number;
  payloadBytes: number;
  payloadText: string | null;
}

export function RetainedPage({ canWrite }: { canWrite: boolean }) {
  return (
    <>
      <h2>Retained messages</h2>
      <PagedTable<Retained>
        id="retained"
        path="/retained"
        filters={[{ name: "filter", label: "Topic filter (default #)" }]}
        rowKey={(m) => m.topic}
        columns={[
          { title: "Topic", cell: (m) => <code>{m.topic}</code> },
          { title: "QoS", cell: (m) => m.qos },
          { title: "Bytes", cell: (m) => m.payloadBytes },
          { title: "Payload", cell: (m) => m.payloadText ?? <span class="muted">binary</span> },
        ]}
        actions={canWrite
          ? (message, done) => (
            <button
              type="button"
              class="danger"
              onClick={() =>
                act(
                  done,
                  "DELETE",
                  `/retained${query({ topic: message.topic })}`,
                  `deleted ${message.topic}`,
                )}
            >
              Delete
            </button>
          )
          : undefined}
      />
    </>
  );
}
