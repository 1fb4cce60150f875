/**
 * The `$SYS/broker/...` tree, as Mosquitto publishes it: retained messages refreshed every interval, so a
 * client that subscribes to `$SYS/#` sees the current values at once. Wildcards at the first level never
 * match `$SYS` [MQTT-4.7.2-1], so `#` subscribers are not flooded.
 */

/** The figures the publisher samples; read at every interval. */
export interface SysSample {
  clientsConnected: number;
  /** Connected plus disconnected persistent sessions. */
  clientsTotal: number;
  messagesReceived: number;
  messagesSent: number;
  messagesDropped: number;
  bytesReceived: number;
  bytesSent: number;
  subscriptions: number;
  retained: number;
}

export interface SysPublisherOptions {
  version: string;
  intervalSeconds: number;
  sample: () => SysSample;
  /** Publishes one retained message. */
  publish: (topic: string, payload: string) => void;
  now?: () => number;
}

/** Exponentially damped per-minute rates, like Mosquitto's load figures and Unix load averages. */
class LoadAverage {
  readonly values = { "1min": 0, "5min": 0, "15min": 0 };
  #last: number | undefined;

  update(total: number, elapsedSeconds: number): void {
    if (this.#last !== undefined && elapsedSeconds > 0) {
      const perMinute = ((total - this.#last) / elapsedSeconds) * 60;
      for (const [window, minutes] of [["1min", 1], ["5min", 5], ["15min", 15]] as const) {
        const decay = Math.exp(-elapsedSeconds / (minutes * 60));
        this.values[window] = this.values[window] * decay + perMinute * (1 - decay);
      }
    }
    this.#last = total;
  }
}

/** Starts publishing; returns a function that stops it. Publishes once immediately. */
export function startSysPublisher(options: SysPublisherOptions): () => void {
  const now = options.now ?? Date.now;
  const startedAt = now();
  let lastAt = startedAt;
  const loads = {
    "messages/received": new LoadAverage(),
    "messages/sent": new LoadAverage(),
    "bytes/received": new LoadAverage(),
    "bytes/sent": new LoadAverage(),
  };
  const publish = () => {
    const at = now();
    const sample = options.sample();
    const elapsed = (at - lastAt) / 1000;
    lastAt = at;
    const values: Record<string, string | number> = {
      "version": `mqtt-proxy ${options.version}`,
      "uptime": `${Math.floor((at - startedAt) / 1000)} seconds`,
      "clients/connected": sample.clientsConnected,
      "clients/total": sample.clientsTotal,
      "clients/disconnected": Math.max(0, sample.clientsTotal - sample.clientsConnected),
      "messages/received": sample.messagesReceived,
      "messages/sent": sample.messagesSent,
      "messages/dropped": sample.messagesDropped,
      "bytes/received": sample.bytesReceived,
      "bytes/sent": sample.bytesSent,
      "subscriptions/count": sample.subscriptions,
      "retained messages/count": sample.retained,
    };
    const totals = {
      "messages/received": sample.messagesReceived,
      "messages/sent": sample.messagesSent,
      "bytes/received": sample.bytesReceived,
      "bytes/sent": sample.bytesSent,
    };
    for (const [name, load] of Object.entries(loads)) {
      load.update(totals[name as keyof typeof totals], elapsed);
      for (const [window, value] of Object.entries(load.values)) {
        values[`load/${name}/${window}`] = value.toFixed(2);
      }
    }
    for (const [topic, value] of Object.entries(values)) {
      options.publish(`$SYS/broker/${topic}`, String(value));
    }
  };
  publish();
  const timer = setInterval(publish, options.intervalSeconds * 1000);
  return () => clearInterval(timer);
}
