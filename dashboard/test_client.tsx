/// <reference lib="dom" />
/** A small MQTT-over-WebSocket client in the page: connect to a ws/wss listener, subscribe, publish, watch. */
import { useEffect, useRef, useState } from "preact/hooks";
import { call } from "./api.ts";
import { MqttWsClient, type TestMessage } from "./mqtt_ws.ts";

interface Listener {
  name: string;
  type: string;
  port: number;
  path: string | null;
}

const MAX_SHOWN = 200;

export function TestClient(_: { canWrite: boolean }) {
  const [urls, setUrls] = useState<string[]>([]);
  const [status, setStatus] = useState("not connected");
  const [messages, setMessages] = useState<(TestMessage & { at: string })[]>([]);
  const client = useRef<MqttWsClient>();
  useEffect(() => {
    call<Listener[]>("GET", "/listeners").then((listeners) =>
      setUrls(
        listeners.filter((l) => l.type === "ws" || l.type === "wss").map((l) =>
          `${l.type}://${location.hostname}:${l.port}${l.path ?? "/mqtt"}`
        ),
      )
    ).catch((error) => setStatus(String(error.message ?? error)));
    return () => client.current?.close();
  }, []);
  const field = (form: HTMLFormElement, name: string) => String(new FormData(form).get(name) ?? "");
  const connect = async (event: Event) => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    client.current?.close();
    const next = new MqttWsClient({
      onMessage: (message) =>
        setMessages((old) =>
          [{ ...message, at: new Date().toLocaleTimeString() }, ...old].slice(0, MAX_SHOWN)
        ),
      onStatus: setStatus,
    });
    client.current = next;
    setStatus("connecting…");
    try {
      await next.connect(
        field(form, "url"),
        field(form, "clientId") || `dashboard-${Math.random().toString(36).slice(2, 8)}`,
        field(form, "username") || undefined,
        field(form, "password") || undefined,
      );
    } catch (error) {
      setStatus(error instanceof Error ? error.message : String(error));
    }
  };
  const subscribe = (event: Event) => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    client.current?.subscribe(field(form, "filter"), Number(field(form, "qos")) as 0 | 1 | 2);
  };
  const publish = (event: Event) => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const retain = new FormData(form).get("retain") === "on";
    client.current?.publish(
      field(form, "topic"),
      field(form, "payload"),
      Number(field(form, "qos")) as 0 | 1 | 2,
      retain,
    );
  };
  const qos = (
    <select name="qos">
      <option value="0">QoS 0</option>
      <option value="1">QoS 1</option>
      <option value="2">QoS 2</option>
    </select>
  );
  return (
    <>
      <h2>
        Test client <span class="muted" id="tc-status">{status}</span>
      </h2>
      {urls.length === 0 && (
        <p class="muted">No ws or wss listener is configured: add listener.&lt;name&gt;.type = ws.</p>
      )}
      <form class="card row" onSubmit={connect} id="tc-connect">
        <label>
          Listener{" "}
          <select name="url">{urls.map((url) => <option key={url} value={url}>{url}</option>)}</select>
        </label>
        <label>
          Client id <input name="clientId" placeholder="random" />
        </label>
        <label>
          User <input name="username" />
        </label>
        <label>
          Password <input name="password" type="password" />
        </label>
        <button type="submit" disabled={urls.length === 0}>Connect</button>
      </form>
      <form class="card row" onSubmit={subscribe} id="tc-subscribe">
        <label>
          Filter <input name="filter" value="#" />
        </label>
        {qos}
        <button type="submit">Subscribe</button>
      </form>
      <form class="card row" onSubmit={publish} id="tc-publish">
        <label>
          Topic <input name="topic" value="test/dashboard" />
        </label>
        <label>
          Payload <input name="payload" value="hello" />
        </label>
        {qos}
        <label>
          <input name="retain" type="checkbox" /> retain
        </label>
        <button type="submit">Publish</button>
      </form>
      <table id="tc-messages">
        <thead>
          <tr>
            <th>Time</th>
            <th>Topic</th>
            <th>QoS</th>
            <th>Payload</th>
          </tr>
        </thead>
        <tbody>
          {messages.map((m) => (
            <tr class="tc-message" key={`${m.at} ${m.topic} ${m.payload}`}>
              <td>{m.at}</td>
              <td>
                <code>{m.topic}</code>
                {m.retain ? " (retained)" : ""}
              </td>
              <td>{m.qos}</td>
              <td class="payload">{m.payload}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
