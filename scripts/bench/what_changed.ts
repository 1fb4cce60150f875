/**
 * What this round of performance work changed, for docs/benchmarks.md: the commit the full run compares
 * against (run as "mqtt-proxy (before)"), each change with the measurement taken when it was made, and why
 * a peer still wins where it does. Measurements of a quiet machine belong in the generated tables; these are
 * the per-change figures that a whole-benchmark run cannot separate.
 */

/** main before this round: the full run starts this commit's broker next to the current one. */
export const BASELINE_COMMIT = "b16d80f";

export interface Change {
  change: string;
  measure: string;
  before: string;
  after: string;
  ratio: string;
}

export const CHANGES: Change[] = [];

/** Where a peer still wins in this round's measurements, by how much and why. */
export const PEER_NOTES = "";
