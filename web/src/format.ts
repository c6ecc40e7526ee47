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

// The same characters as neutralise() in shared/provenance.py: controls (but tab and newline),
// bidi embeddings, overrides, isolates and marks, line and paragraph separators.
const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** Agent text with every control and bidi character shown as `<U+XXXX>`: an override cannot
 * reverse what is shown around it. */
export function neutralise(text: string): string {
  return text.replace(HIDDEN, (c) => `<U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}>`);
}
