// Placeholder; replaced by scripts/build_dashboard.ts.
export const DASHBOARD_ASSETS: Record<string, { type: string; body: string }> = {};
