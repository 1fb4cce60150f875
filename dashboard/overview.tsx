/// <reference lib="dom" />
/**
 * The overview: the $SYS figures from /api/v1/stats every 2 s, and live charts of connections, messages
 * in and out per second, drops per second and the mean store flush latency.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { call } from "./api.ts";

/** Seconds between refreshes. */
export const REFRESH_SECONDS = 2;
/** Points kept per chart: ten minutes. */
const HISTORY = 300;

interface Stats {
  version: string;
  uptimeSeconds: number;
  clientsConnected: number;
  clientsTotal: number;
  messagesReceived: number;
  messagesSent: number;
  messagesDropped: number;
  bytesReceived: number;
  bytesSent: number;
  subscriptions: number;
  retained: number;
  inflight: number;
  queued: number;
  storeFlushes: number;
  storeFlushSeconds: number;
}

interface ChartSpec {
  id: string;
  title: string;
  series: string[];
}

const CHARTS: ChartSpec[] = [
  { id: "connections", title: "Connections", series: ["connected"] },
  { id: "messages", title: "Messages per second", series: ["in", "out"] },
  { id: "drops", title: "Drops per second", series: ["dropped"] },
  { id: "flush", title: "Store flush latency (ms, mean)", series: ["flush"] },
];

const COLORS = ["#2563eb", "#16a34a", "#dc2626"];

function Chart({ spec, data }: { spec: ChartSpec; data: number[][] }) {
  const element = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot>();
  useEffect(() => {
    plot.current = new uPlot(
      {
        width: 460,
        height: 180,
        series: [{}, ...spec.series.map((label, i) => ({ label, stroke: COLORS[i], width: 2 }))],
        axes: [{}, { size: 50 }],
        legend: { show: true },
      },
      data as uPlot.AlignedData,
      element.current!,
    );
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => plot.current?.setData(data as uPlot.AlignedData), [data]);
  return (
    <section class="card chart" id={`chart-${spec.id}`} data-points={data[0].length}>
      <h3>{spec.title}</h3>
      <div ref={element} />
    </section>
  );
}

export function Overview(_: { canWrite: boolean }) {
  const [stats, setStats] = useState<Stats | undefined>();
  const [error, setError] = useState("");
  const [series, setSeries] = useState<Record<string, number[][]>>(() =>
    Object.fromEntries(CHARTS.map((chart) => [chart.id, [[], ...chart.series.map(() => [])]]))
  );
  const previous = useRef<{ at: number; stats: Stats }>();
  useEffect(() => {
    const sample = async () => {
      try {
        const now = await call<Stats>("GET", "/stats");
        const at = Date.now() / 1000;
        const last = previous.current;
        previous.current = { at, stats: now };
        setStats(now);
        setError("");
        if (!last) return;
        const seconds = Math.max(0.001, at - last.at);
        const rate = (key: keyof Stats) =>
          Math.max(0, (Number(now[key]) - Number(last.stats[key])) / seconds);
        const flushes = now.storeFlushes - last.stats.storeFlushes;
        const values: Record<string, number[]> = {
          connections: [now.clientsConnected],
          messages: [rate("messagesReceived"), rate("messagesSent")],
          drops: [rate("messagesDropped")],
          flush: [flushes > 0 ? (now.storeFlushSeconds - last.stats.storeFlushSeconds) / flushes * 1000 : 0],
        };
        setSeries((old) => {
          const next: Record<string, number[][]> = {};
          for (const [id, columns] of Object.entries(old)) {
            next[id] = columns.map((column, i) =>
              [...column, i === 0 ? at : values[id][i - 1]].slice(-HISTORY)
            );
          }
          return next;
        });
      } catch (failure) {
        setError(failure instanceof Error ? failure.message : String(failure));
      }
    };
    void sample();
    const timer = setInterval(sample, REFRESH_SECONDS * 1000);
    return () => clearInterval(timer);
  }, []);
  const figures: [string, string, number | string | undefined][] = [
    ["clients-connected", "Clients connected", stats?.clientsConnected],
    ["sessions", "Sessions", stats?.clientsTotal],
    ["received", "Messages received", stats?.messagesReceived],
    ["sent", "Messages sent", stats?.messagesSent],
    ["dropped", "Messages dropped", stats?.messagesDropped],
    ["subscriptions", "Subscriptions", stats?.subscriptions],
    ["retained", "Retained", stats?.retained],
    ["inflight", "In flight / queued", stats ? `${stats.inflight} / ${stats.queued}` : undefined],
  ];
  return (
    <>
      <h2>
        Overview <span class="muted">{stats ? `${stats.version}, up ${stats.uptimeSeconds} s` : ""}</span>
      </h2>
      {error && <p class="error" role="alert">{error}</p>}
      <div class="figures">
        {figures.map(([id, label, value]) => (
          <div class="card figure" key={id}>
            <span class="muted">{label}</span>
            <strong id={`stat-${id}`}>{value ?? "…"}</strong>
          </div>
        ))}
      </div>
      <div class="charts">
        {CHARTS.map((spec) => <Chart key={spec.id} spec={spec} data={series[spec.id]} />)}
      </div>
    </>
  );
}
