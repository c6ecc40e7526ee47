// Small display helpers the dashboard's views share.

export const TRIGGER_COLOURS: Record<string, string> = {
  critical_error: "#d92d20",
  retry_limit: "#f79009",
  loop_pattern: "#fdb022",
  error_rate: "#ef6820",
  session_duration: "#eaaa08",
  no_progress: "#dc6803",
  manual: "#2e90fa",
};

export const STATUS_COLOURS: Record<string, string> = {
  sent: "#12b76a",
  succeeded: "#12b76a",
  failed: "#d92d20",
  refused: "#f79009",
  suppressed: "#98a2b3",
  unknown: "#667085",
  sending: "#2e90fa",
  nothing_to_do: "#98a2b3",
  attempted: "#2e90fa",
};

/** 75 → "1m 15s"; 7300 → "2h 1m". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h) return `${h}h ${m}m`;
  return m ? `${m}m ${s % 60}s` : `${s}s`;
}

export function since(iso: string, now: number): string {
  return duration((now - Date.parse(iso)) / 1000);
}
