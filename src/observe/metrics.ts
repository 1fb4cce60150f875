/**
 * A small Prometheus registry (counters, gauges, histograms, with labels) rendered in the text exposition
 * format 0.0.4, and the broker's metrics.
 *
 * Two kinds of metric live here, both per broker instance:
 * - ones updated on the hot path ({@link TrafficMetrics}): packets by type, storage flush latency;
 * - ones sampled at scrape time from callbacks main.ts provides ({@link createBrokerMetrics}):
 *   connections, bytes, drops, queue depth, auth failures. Nothing is counted twice: the broker and the
 *   connection manager already keep those totals.
 *
 * @module
 */

/** Label values in the order of the metric's label names. */
type LabelValues = readonly string[];

interface Series<T> {
  labels: LabelValues;
  value: T;
}

/** Something that can write its samples in the text format. */
export interface Collectable {
  readonly name: string;
  render(out: string[]): void;
}

abstract class Metric<T> implements Collectable {
  protected readonly series = new Map<string, Series<T>>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly type: "counter" | "gauge" | "histogram",
  ) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name: ${name}`);
    for (const label of labelNames) {
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label) || label.startsWith("__") || label === "le") {
        throw new Error(`invalid label name for ${name}: ${label}`);
      }
    }
  }

  protected abstract initial(): T;

  protected entry(labels: LabelValues): Series<T> {
    if (labels.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label(s), got ${labels.length}`);
    }
    const key = labels.length === 0 ? "" : labels.length === 1 ? labels[0] : labels.join("\u0000");
    let series = this.series.get(key);
    if (!series) {
      series = { labels: [...labels], value: this.initial() };
      this.series.set(key, series);
    }
    return series;
  }

  /** Forgets every labelled series (for label sets recomputed at each scrape). */
  reset(): void {
    this.series.clear();
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    if (this.series.size === 0 && this.labelNames.length === 0) this.entry([]);
    for (const series of this.series.values()) this.renderSeries(out, series);
  }

  protected abstract renderSeries(out: string[], series: Series<T>): void;

  protected labelText(labels: LabelValues, extra?: string): string {
    const parts = labels.map((value, i) => `${this.labelNames[i]}="${escapeLabel(value)}"`);
    if (extra) parts.push(extra);
    return parts.length === 0 ? "" : `{${parts.join(",")}}`;
  }
}

/** A monotonically increasing count. */
export class Counter extends Metric<number> {
  readonly #children = new Map<string, { inc(by?: number): void }>();

  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, labelNames, "counter");
  }

  protected initial(): number {
    return 0;
  }

  /** Adds `by` (default 1) to the unlabelled series. */
  inc(by = 1): void {
    this.labels().inc(by);
  }

  /** The series for these label values; cached, so hot paths may call it per event. */
  labels(...values: string[]): { inc(by?: number): void } {
    const key = values.length === 1 ? values[0] : values.join("\u0000");
    let child = this.#children.get(key);
    if (!child) {
      const series = this.entry(values);
      child = {
        inc(by = 1) {
          if (by < 0) throw new Error("a counter only goes up");
          series.value += by;
        },
      };
      this.#children.set(key, child);
    }
    return child;
  }

  get(...values: string[]): number {
    return this.entry(values).value;
  }

  /** The series of one label value itself, for a hot path that adds to it directly (never below 0). */
  seriesOf(value: string): Series<number> {
    return this.entry([value]);
  }

  override reset(): void {
    super.reset();
    this.#children.clear();
  }

  protected renderSeries(out: string[], series: Series<number>): void {
    out.push(`${this.name}${this.labelText(series.labels)} ${formatNumber(series.value)}`);
  }
}

/** A value that goes up and down. */
export class Gauge extends Metric<number> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, labelNames, "gauge");
  }

  protected initial(): number {
    return 0;
  }

  set(value: number, ...labels: string[]): void {
    this.entry(labels).value = value;
  }

  inc(by = 1, ...labels: string[]): void {
    this.entry(labels).value += by;
  }

  get(...labels: string[]): number {
    return this.entry(labels).value;
  }

  protected renderSeries(out: string[], series: Series<number>): void {
    out.push(`${this.name}${this.labelText(series.labels)} ${formatNumber(series.value)}`);
  }
}

interface HistogramValue {
  buckets: number[];
  sum: number;
  count: number;
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram extends Metric<HistogramValue> {
  readonly buckets: readonly number[];

  constructor(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []) {
    super(name, help, labelNames, "histogram");
    if (buckets.length === 0) throw new Error(`${name}: a histogram needs buckets`);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i] > buckets[i - 1])) throw new Error(`${name}: buckets must increase`);
    }
    this.buckets = buckets.filter((bound) => bound !== Infinity);
  }

  protected initial(): HistogramValue {
    return { buckets: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  observe(value: number, ...labels: string[]): void {
    const series = this.entry(labels).value;
    // counts are stored per bucket and made cumulative when rendered
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]) i++;
    if (i < this.buckets.length) series.buckets[i]++;
    series.sum += value;
    series.count++;
  }

  /** Count and sum of one series (tests, $SYS). */
  get(...labels: string[]): { count: number; sum: number } {
    const { count, sum } = this.entry(labels).value;
    return { count, sum };
  }

  protected renderSeries(out: string[], series: Series<HistogramValue>): void {
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += series.value.buckets[i];
      const le = `le="${formatNumber(this.buckets[i])}"`;
      out.push(`${this.name}_bucket${this.labelText(series.labels, le)} ${cumulative}`);
    }
    out.push(`${this.name}_bucket${this.labelText(series.labels, 'le="+Inf"')} ${series.value.count}`);
    out.push(`${this.name}_sum${this.labelText(series.labels)} ${formatNumber(series.value.sum)}`);
    out.push(`${this.name}_count${this.labelText(series.labels)} ${series.value.count}`);
  }
}

/** A set of metrics rendered together; `beforeScrape` hooks refresh sampled values first. */
export class Registry {
  readonly #metrics: Collectable[] = [];
  readonly #hooks: (() => void)[] = [];

  register<M extends Collectable>(metric: M): M {
    if (this.#metrics.some((existing) => existing.name === metric.name)) {
      throw new Error(`metric ${metric.name} registered twice`);
    }
    this.#metrics.push(metric);
    return metric;
  }

  beforeScrape(hook: () => void): void {
    this.#hooks.push(hook);
  }

  /** The text exposition format 0.0.4, ending with a newline. */
  render(): string {
    for (const hook of this.#hooks) hook();
    const out: string[] = [];
    for (const metric of this.#metrics) metric.render(out);
    return out.join("\n") + "\n";
  }
}

/** The Content-Type of {@link Registry.render}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabel(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

// ---------------------------------------------------------------------------------------------------
// The broker's metrics
// ---------------------------------------------------------------------------------------------------

/**
 * One packet counter's series per packet type, found without building a label list and counted without a
 * call through the counter (the packet counters are never reset, so the series stay theirs). The two types
 * counted last and their series are kept: a turn's packets mostly come in runs of one type or alternate
 * between two (a forwarded PUBLISH and its publisher's PUBACK, message after message), which then skip the
 * Map.
 */
class PacketTypeCount {
  readonly #series = new Map<string, Series<number>>();
  #lastType = "";
  #last: Series<number> | undefined;
  #previousType = "";
  #previous: Series<number> | undefined;

  constructor(private readonly counter: Counter) {}

  count(type: string): void {
    if (type !== this.#lastType) {
      let series: Series<number> | undefined;
      if (type === this.#previousType) {
        series = this.#previous!;
      } else {
        series = this.#series.get(type);
        if (series === undefined) this.#series.set(type, series = this.counter.seriesOf(type));
      }
      this.#previousType = this.#lastType;
      this.#previous = this.#last;
      this.#lastType = type;
      this.#last = series;
    }
    this.#last!.value++;
  }
}

/**
 * The metrics a broker updates on its hot paths, one set per broker instance (two brokers in one process
 * count apart): packets by type both ways, and storage flush latency.
 */
export class TrafficMetrics {
  /** Control packets decoded from clients, by packet type. */
  readonly packetsReceived = new Counter(
    "mqtt_packets_received_total",
    "MQTT control packets received from clients, by packet type.",
    ["type"],
  );
  /** Control packets queued to clients, by packet type. */
  readonly packetsSent = new Counter(
    "mqtt_packets_sent_total",
    "MQTT control packets sent to clients, by packet type.",
    ["type"],
  );
  readonly #received = new PacketTypeCount(this.packetsReceived);
  readonly #sent = new PacketTypeCount(this.packetsSent);

  /** Counts a control packet decoded from a client. */
  received(type: string): void {
    this.#received.count(type);
  }

  /** Counts a control packet queued to a client. */
  sent(type: string): void {
    this.#sent.count(type);
  }

  /** Durations of storage flushes (group commits), in seconds. */
  readonly storeFlushSeconds = new Histogram(
    "mqtt_store_flush_seconds",
    "Time for the store to make pending changes durable (one group commit), in seconds.",
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  );

  /**
   * Times a storage flush into `mqtt_store_flush_seconds` and returns the same outcome. Rejected flushes
   * are timed too (a failing disk is slow as well).
   */
  readonly timeFlush = <T>(flush: Promise<T>): Promise<T> => {
    const start = performance.now();
    const observe = () => this.storeFlushSeconds.observe((performance.now() - start) / 1000);
    return flush.then(
      (value) => {
        observe();
        return value;
      },
      (error) => {
        observe();
        throw error;
      },
    );
  };
}

/** Messages not delivered, by reason: the session's DropCounts. */
export interface DropTotals {
  queueFull: number;
  expired: number;
  tooLarge: number;
  qos0Offline: number;
  slowConsumer: number;
  notAuthorized: number;
}

const DROP_REASONS: readonly [keyof DropTotals, string][] = [
  ["queueFull", "queue_full"],
  ["expired", "expired"],
  ["tooLarge", "too_large"],
  ["qos0Offline", "qos0_offline"],
  ["slowConsumer", "slow_consumer"],
  ["notAuthorized", "not_authorized"],
];

/** What a broker reports at scrape time; main.ts wires these to the broker and its listeners. */
export interface BrokerMetricSources {
  /** Per listener: connections open now and accepted since start. */
  listeners(): { name: string; open: number; total: number }[];
  /** Bytes over all connections since start. */
  traffic(): { bytesReceived: number; bytesSent: number };
  drops(): DropTotals;
  /** Messages queued behind the inflight window and messages in flight, over all sessions. */
  sessions(): { queued: number; inflight: number };
  /** Logins since start by method (password, access_key, scram, certificate, anonymous). */
  logins(): Record<string, { successes: number; failures: number; delayed: number }>;
  /** Memory in use against limits.memory_bytes, and messages not taken because it was over. */
  memory?(): { usedBytes: number; limitBytes: number; refused: number };
  /** A cluster node's view (absent on a single node). */
  cluster?(): ClusterMetricSample;
}

/** What a cluster node reports: the shape of its ClusterNode.metrics(), kept here without importing it. */
export interface ClusterMetricSample {
  /** The cluster log can be used (what /readyz says of it). */
  up: boolean;
  /** Nodes this node believes alive, itself included. */
  nodes: number;
  log: {
    entriesAppended: number;
    appendsFailed: number;
    messagesSent: number;
    sendFailures: number;
    pendingBytes: number;
    entriesApplied: number;
    resendsDropped: number;
  };
}

/** The cluster's series: name, help, and how each is read from a sample. */
const CLUSTER_GAUGES: [string, string, (sample: ClusterMetricSample) => number][] = [
  ["mqtt_cluster_up", "1 while this node can use the cluster log, else 0.", (s) => s.up ? 1 : 0],
  ["mqtt_cluster_nodes", "Nodes this node believes alive, itself included.", (s) => s.nodes],
  [
    "mqtt_cluster_log_pending_bytes",
    "Bytes appended to the cluster log and not yet acknowledged by it.",
    (s) => s.log.pendingBytes,
  ],
];
const CLUSTER_COUNTERS: [string, string, (sample: ClusterMetricSample) => number][] = [
  [
    "mqtt_cluster_log_entries_appended_total",
    "Entries this node appended that the cluster log acknowledged.",
    (s) => s.log.entriesAppended,
  ],
  [
    "mqtt_cluster_log_appends_failed_total",
    "Appends refused or timed out (what needed them was refused to the client or retried).",
    (s) => s.log.appendsFailed,
  ],
  [
    "mqtt_cluster_log_messages_sent_total",
    "Messages sent to the log service (each carries many entries).",
    (s) => s.log.messagesSent,
  ],
  [
    "mqtt_cluster_log_send_failures_total",
    "Send attempts to the log service that failed (retried until their deadline).",
    (s) => s.log.sendFailures,
  ],
  [
    "mqtt_cluster_log_entries_applied_total",
    "Entries of the cluster log this node applied.",
    (s) => s.log.entriesApplied,
  ],
  [
    "mqtt_cluster_log_resends_dropped_total",
    "Second copies of a log message (a send retried after its receipt was lost) that were dropped.",
    (s) => s.log.resendsDropped,
  ],
];

/** A broker's metrics: a registry holding its traffic metrics plus gauges sampled from `sources`. */
export function createBrokerMetrics(traffic: TrafficMetrics, sources: BrokerMetricSources): Registry {
  const registry = new Registry();
  const connections = registry.register(
    new Gauge("mqtt_connections", "Client connections open now, by listener.", ["listener"]),
  );
  const connectionsTotal = registry.register(
    new Counter("mqtt_connections_total", "Client connections accepted since start, by listener.", [
      "listener",
    ]),
  );
  registry.register(traffic.packetsReceived);
  registry.register(traffic.packetsSent);
  const bytesReceived = registry.register(
    new Counter("mqtt_bytes_received_total", "Bytes received from clients since start."),
  );
  const bytesSent = registry.register(
    new Counter("mqtt_bytes_sent_total", "Bytes sent to clients since start."),
  );
  const dropped = registry.register(
    new Counter("mqtt_messages_dropped_total", "Messages not delivered to a subscriber, by reason.", [
      "reason",
    ]),
  );
  const queueDepth = registry.register(
    new Gauge("mqtt_queue_depth", "Messages queued behind the inflight window, all sessions."),
  );
  const inflight = registry.register(
    new Gauge("mqtt_inflight", "Outbound QoS 1/2 messages awaiting acknowledgement."),
  );
  registry.register(traffic.storeFlushSeconds);
  const authFailures = registry.register(
    new Counter("mqtt_auth_failures_total", "Failed logins since start, by method.", ["method"]),
  );
  const authSuccesses = registry.register(
    new Counter("mqtt_auth_successes_total", "Successful logins since start, by method.", ["method"]),
  );
  const authDelayed = registry.register(
    new Counter(
      "mqtt_auth_delayed_total",
      "Logins that waited for their address's failure delay since start, by method.",
      ["method"],
    ),
  );

  const memoryUsed = registry.register(
    new Gauge("mqtt_memory_used_bytes", "Memory in use (JavaScript heap in use plus buffers), last sample."),
  );
  const memoryLimit = registry.register(
    new Gauge("mqtt_memory_limit_bytes", "limits.memory_bytes in effect."),
  );
  const memoryRefused = registry.register(
    new Counter(
      "mqtt_memory_refused_total",
      "Client messages not taken because memory was over limits.memory_bytes (QoS 0 dropped, QoS 1/2 refused).",
    ),
  );

  const clusterGauges = sources.cluster
    ? CLUSTER_GAUGES.map(([name, help, read]) => ({ metric: registry.register(new Gauge(name, help)), read }))
    : [];
  const clusterCounters = sources.cluster
    ? CLUSTER_COUNTERS.map(([name, help, read]) => ({
      metric: registry.register(new Counter(name, help)),
      read,
    }))
    : [];

  registry.beforeScrape(() => {
    // Totals kept elsewhere are copied in: reset and set rather than inc.
    const cluster = sources.cluster?.();
    if (cluster) {
      for (const { metric, read } of clusterGauges) metric.set(read(cluster));
      for (const { metric, read } of clusterCounters) {
        metric.reset();
        metric.inc(read(cluster));
      }
    }
    const memory = sources.memory?.();
    if (memory) {
      memoryUsed.set(memory.usedBytes);
      memoryLimit.set(memory.limitBytes);
      memoryRefused.reset();
      memoryRefused.inc(memory.refused);
    }
    connections.reset();
    connectionsTotal.reset();
    for (const listener of sources.listeners()) {
      connections.set(listener.open, listener.name);
      connectionsTotal.labels(listener.name).inc(listener.total);
    }
    const traffic = sources.traffic();
    bytesReceived.reset();
    bytesReceived.inc(traffic.bytesReceived);
    bytesSent.reset();
    bytesSent.inc(traffic.bytesSent);
    const drops = sources.drops();
    dropped.reset();
    for (const [key, reason] of DROP_REASONS) dropped.labels(reason).inc(drops[key]);
    const totals = sources.sessions();
    queueDepth.set(totals.queued);
    inflight.set(totals.inflight);
    authFailures.reset();
    authSuccesses.reset();
    authDelayed.reset();
    for (const [method, counts] of Object.entries(sources.logins())) {
      authFailures.labels(method).inc(counts.failures);
      authSuccesses.labels(method).inc(counts.successes);
      authDelayed.labels(method).inc(counts.delayed);
    }
  });
  return registry;
}

/** One sample of a parsed exposition: metric name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses the text exposition format (the subset {@link Registry.render} writes): for tests and tools
 * that read /metrics.
 */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    if (match[3]) {
      const pattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
      for (const label of match[3].matchAll(pattern)) {
        labels[label[1]] = label[2].replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      }
    }
    const raw = match[4];
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    samples.push({ name: match[1], labels, value });
  }
  return samples;
}
