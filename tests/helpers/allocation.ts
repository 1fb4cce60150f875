/**
 * What a piece of code allocates on the JavaScript heap, from V8's sampling heap profiler (through the
 * inspector protocol): about one sample per `SAMPLING_INTERVAL` bytes, collected objects included.
 */
import { Session } from "node:inspector";

const SAMPLING_INTERVAL = 64;

/** Bytes `body` allocated on this isolate's heap (an estimate: samples times the interval). */
export async function allocatedBytes(body: () => void): Promise<number> {
  const session = new Session();
  session.connect();
  const post = (method: string, params: object = {}) =>
    new Promise<{ profile?: { samples: unknown[] } }>((resolve, reject) =>
      session.post(method, params, (error, result) => error ? reject(error) : resolve(result ?? {}))
    );
  try {
    await post("HeapProfiler.enable");
    await post("HeapProfiler.startSampling", {
      samplingInterval: SAMPLING_INTERVAL,
      includeObjectsCollectedByMinorGC: true,
      includeObjectsCollectedByMajorGC: true,
    });
    body();
    const { profile } = await post("HeapProfiler.stopSampling");
    return profile!.samples.length * SAMPLING_INTERVAL;
  } finally {
    session.disconnect();
  }
}
