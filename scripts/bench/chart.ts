/** docs/benchmarks.svg: delivered msg/s per case in both layouts and p99 at the fixed rate, one bar per broker. */
import { BASELINE, type BrokerName, type Layout } from "./brokers.ts";
import { LATENCY_RATE } from "./cases.ts";
import { layoutTitle, micros, type ReportInput, summariesFor } from "./report.ts";

const COLORS: Partial<Record<BrokerName, string>> = {
  "mqtt-proxy": "#1f77b4",
  rumqttd: "#d62728",
  mochi: "#9467bd",
  mosquitto: "#ff7f0e",
  aedes: "#2ca02c",
};

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function shortNumber(value: number): string {
  const trim = (text: string) => text.replace(/\.0$/, "");
  if (value >= 1_000_000) return `${trim((value / 1_000_000).toFixed(1))}M`;
  if (value >= 1000) return `${trim((value / 1000).toFixed(value >= 100_000 ? 0 : 1))}k`;
  return value.toFixed(0);
}

/** Axis labels for powers of ten of microseconds. */
function decadeMicros(value: number): string {
  if (value >= 1_000_000) return `${value / 1_000_000} s`;
  if (value >= 1000) return `${value / 1000} ms`;
  return `${value} µs`;
}

function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

/** Grouped bars: one group per case, one bar per broker. */
function barPanel(
  title: string,
  groups: { label: string; values: Map<BrokerName, number> }[],
  brokers: BrokerName[],
  top: number,
  options: { log: boolean; format: (v: number) => string; tick: (v: number) => string },
): { svg: string; height: number } {
  const left = 70, width = 900 - left - 20, plotHeight = 200, labelRoom = 60;
  const all = groups.flatMap((g) => [...g.values.values()]).filter((v) => Number.isFinite(v) && v > 0);
  const out: string[] = [];
  out.push(`<text x="${left}" y="${top + 14}" font-size="14" font-weight="bold">${escapeXml(title)}</text>`);
  const plotTop = top + 28;
  const bottom = plotTop + plotHeight;
  let scale: (v: number) => number;
  const ticks: number[] = [];
  if (options.log) {
    const low = all.length ? 10 ** Math.floor(Math.log10(Math.min(...all))) : 1;
    const high = Math.max(low * 10, all.length ? 10 ** Math.ceil(Math.log10(Math.max(...all))) : 10);
    scale = (v) =>
      plotHeight * (Math.log10(Math.max(v, low)) - Math.log10(low)) / (Math.log10(high) - Math.log10(low));
    for (let t = low; t <= high; t *= 10) ticks.push(t);
  } else {
    const high = niceCeiling(Math.max(...all, 1));
    scale = (v) => (plotHeight * v) / high;
    for (let i = 0; i <= 4; i++) ticks.push((high * i) / 4);
  }
  for (const tick of ticks) {
    const y = bottom - scale(tick);
    out.push(
      `<line x1="${left}" y1="${y.toFixed(1)}" x2="${left + width}" y2="${y.toFixed(1)}" stroke="#ddd"/>`,
    );
    out.push(
      `<text x="${left - 6}" y="${(y + 4).toFixed(1)}" font-size="11" text-anchor="end">${
        escapeXml(options.tick(tick))
      }</text>`,
    );
  }
  out.push(`<line x1="${left}" y1="${bottom}" x2="${left + width}" y2="${bottom}" stroke="#333"/>`);
  const groupWidth = width / Math.max(1, groups.length);
  const barWidth = Math.min(28, (groupWidth * 0.8) / Math.max(1, brokers.length));
  groups.forEach((group, g) => {
    const groupLeft = left + g * groupWidth + (groupWidth - barWidth * brokers.length) / 2;
    brokers.forEach((broker, b) => {
      const value = group.values.get(broker) ?? NaN;
      const x = groupLeft + b * barWidth;
      if (!Number.isFinite(value) || value <= 0) {
        out.push(
          `<text x="${(x + barWidth / 2).toFixed(1)}" y="${
            bottom - 4
          }" font-size="9" text-anchor="middle" fill="#c00">n/a</text>`,
        );
        return;
      }
      const h = Math.max(1, scale(value));
      out.push(
        `<rect x="${x.toFixed(1)}" y="${(bottom - h).toFixed(1)}" width="${
          (barWidth - 2).toFixed(1)
        }" height="${h.toFixed(1)}" fill="${COLORS[broker] ?? "#999"}"><title>${
          escapeXml(`${broker}: ${options.format(value)}`)
        }</title></rect>`,
      );
      out.push(
        `<text x="${(x + barWidth / 2 - 1).toFixed(1)}" y="${
          (bottom - h - 3).toFixed(1)
        }" font-size="9" text-anchor="middle">${escapeXml(options.format(value))}</text>`,
      );
    });
    const labelX = left + g * groupWidth + groupWidth / 2;
    out.push(
      `<text x="${labelX.toFixed(1)}" y="${bottom + 16}" font-size="11" text-anchor="middle">${
        escapeXml(group.label)
      }</text>`,
    );
  });
  return { svg: out.join("\n"), height: 28 + plotHeight + labelRoom };
}

export function chartSvg(input: ReportInput): string {
  const brokers = input.brokers.filter((b) => b !== BASELINE);
  const groupsOf = (layout: Layout, latency: boolean) => {
    const groups = [];
    for (const testCase of input.cases) {
      if (testCase.kind !== "pubsub" || (testCase.group === "latency") !== latency) continue;
      const summaries = summariesFor(input, testCase, layout);
      const pick = (b: BrokerName) =>
        latency ? summaries.get(b)?.p99 ?? NaN : summaries.get(b)?.msgsPerSecond ?? NaN;
      groups.push({ label: testCase.name, values: new Map(brokers.map((b) => [b, pick(b)])) });
    }
    return groups;
  };
  const parts: string[] = [];
  let y = 40;
  const legend = brokers.map((broker, i) =>
    `<rect x="${70 + i * 140}" y="12" width="14" height="14" fill="${COLORS[broker] ?? "#999"}"/>` +
    `<text x="${90 + i * 140}" y="24" font-size="13">${escapeXml(broker)}</text>`
  ).join("\n");
  for (const layout of input.layouts) {
    const groups = groupsOf(layout, false);
    if (!groups.length) continue;
    // Fan-out deliveries can outnumber the other cases by 10× or more: a log axis keeps every bar readable.
    const panel = barPanel(
      `Delivered msg/s, ${layoutTitle(layout)} (median, log scale; higher is better)`,
      groups,
      brokers,
      y,
      { log: true, format: shortNumber, tick: shortNumber },
    );
    parts.push(panel.svg);
    y += panel.height;
  }
  for (const layout of input.layouts) {
    const groups = groupsOf(layout, true);
    if (!groups.length) continue;
    const panel = barPanel(
      `p99 latency at ${
        LATENCY_RATE.toLocaleString("en-US")
      } msg/s, ${layout} (median, log scale; lower is better)`,
      groups,
      brokers,
      y,
      { log: true, format: micros, tick: decadeMicros },
    );
    parts.push(panel.svg);
    y += panel.height;
  }
  const note = `${input.machine.cpuModel}, ${input.machine.nproc} CPUs, ${input.date}${
    input.quick ? " (quick run)" : ""
  }`;
  parts.push(`<text x="70" y="${y + 4}" font-size="10" fill="#666">${escapeXml(note)}</text>`);
  const height = y + 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${height}" viewBox="0 0 900 ${height}" font-family="sans-serif">
<rect width="900" height="${height}" fill="white"/>
${legend}
${parts.join("\n")}
</svg>
`;
}
