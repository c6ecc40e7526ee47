// Typed calls to the YokeFlow Intervention API (same origin: the API serves this dashboard).

export interface RetryStats {
  total_retries: number;
  max_retries_on_single_command: number;
  unique_errors: number;
}

export interface Intervention {
  id: string;
  project_id: string;
  session_id: string;
  pause_reason: string;
  pause_type: string;
  blocker_type: string | null;
  blocker_info: { error_excerpt?: string; suggested_recovery?: string | null; client?: string | null };
  retry_stats: RetryStats;
  current_task_id: string | null;
  current_task_description: string | null;
  paused_at: string;
  resolved: boolean;
  resolved_at: string | null;
  resolved_by: string | null;
  resolution_notes: string | null;
  // "human": an authenticated person's notes; "automatic": recovery's, quoting the agent.
  resolution_source?: "human" | "automatic";
  can_auto_resume: boolean;
  next_session_id: string | null;
  // observe: a stop observe mode would have made; nothing was paused and nobody paged.
  mode: "enforce" | "observe";
  false_stop: boolean;
  false_stop_by: string | null;
  false_stop_at: string | null;
  false_stop_note: string | null;
  acknowledged_by?: string | null;
  acknowledged_via?: string | null;
  snoozed_until?: string | null;
}

export interface Judgement {
  project_id: string;
  trigger: string;
  stops: number;
  observed: number;
  false_stops: number;
}

export interface Action {
  id: number;
  action_type: string;
  action_status: string;
  action_details: Record<string, unknown>;
  created_at: string;
}

export interface Delivery {
  channel: string;
  recipient: string;
  status: string;
  detail: string;
  attempts: number;
}

export interface Detail extends Intervention {
  actions: Action[];
  notifications: Delivery[];
}

export interface Preferences {
  webhook_enabled: boolean;
  webhook_url: string | null;
  webhook_kind: string;
  email_enabled: boolean;
  email_addresses: string[];
  sms_enabled: boolean;
  sms_numbers: string[];
  notify_on_retry_limit: boolean;
  notify_on_critical_error: boolean;
  notify_on_timeout: boolean;
  notify_on_manual_pause: boolean;
  min_notification_interval: number;
}

export interface Warning {
  warning_id: string;
  project_id: string;
  session_id: string;
  trigger: string;
  reason: string;
  advice: string;
  event_seq: number;
  detected_at: string;
  stopped_after: boolean;
}

export type RiskKind = "retry_limit" | "error_rate" | "session_duration" | "no_progress";

/** A running session as the detector sees it (KV session_summaries, via /api/fleet). */
export interface SessionSummary {
  project_id: string;
  session_id: string;
  client?: string | null;
  state: "running" | "stopped" | "ended";
  intervention_id: string | null;
  task: { id: string; description: string } | null;
  started_at: string | null;
  last_event_at: string | null;
  events: number;
  retry_streak: number;
  max_retries: number;
  error_rate: number;
  results: number;
  error_rate_threshold: number;
  error_rate_min_results: number;
  elapsed_s: number;
  duration_limit_s: number;
  warnings: string[];
  shares: Partial<Record<RiskKind, number>>; // how much of each limit is used (1: the next step stops)
  risk: number;
  nearest: RiskKind | null;
  waiting?: string | null; // what it waits for a person for ("permission: Allow Bash: …"); agent text
}

export interface Cost {
  name: string;
  interventions: number;
  paused_s: number;
}

export interface Overview {
  since: string;
  bucket: "hour" | "day";
  totals: {
    interventions: number;
    active: number;
    resolved: number;
    warnings: number;
    observed: number;
    false_stops: number;
  };
  over_time: { bucket: string; trigger: string; count: number }[];
  time_to_resume: { kind: "human" | "automatic"; count: number; p50_s: number; p90_s: number }[];
  recovery: {
    succeeded: number;
    failed: number;
    refused: number;
    nothing_to_do: number;
    attempted: number;
    success_rate: number | null;
  };
  projects: Cost[];
  blockers: Cost[];
  clients: Cost[];
  notifications: { channel: string; status: string; count: number }[];
  judgement: Judgement[];
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
  }
}

const TOKEN_KEY = "yokeflow.apiToken";
export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) ?? "",
  set: (value: string) => localStorage.setItem(TOKEN_KEY, value),
};

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token.get()) headers.Authorization = `Bearer ${token.get()}`;
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch {
    throw new ApiError("The API cannot be reached.", 0);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = body?.detail;
    if (Array.isArray(detail)) {
      const fields: Record<string, string> = {};
      for (const item of detail) fields[String(item.loc?.[item.loc.length - 1])] = item.msg;
      throw new ApiError("Some values are not valid.", response.status, fields);
    }
    throw new ApiError(typeof detail === "string" ? detail : response.statusText, response.status);
  }
  return body as T;
}

const query = (params: Record<string, string | number | undefined>) => {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs.map(([k, v]) => [k, String(v)])) : "";
};

export const api = {
  // A single-use ticket for the live stream: an EventSource cannot send the token as a header.
  eventsTicket: () => call<{ ticket: string }>("/api/events/ticket", { method: "POST" }),
  active: (project?: string) =>
    call<{ interventions: Intervention[] }>(`/api/interventions/active${query({ project_id: project })}`),
  history: (project?: string, limit = 50, offset = 0) =>
    call<{ interventions: Intervention[]; total: number }>(
      `/api/interventions/history${query({ project_id: project, limit, offset })}`,
    ),
  warnings: (project?: string, limit = 50) =>
    call<{ warnings: Warning[]; total: number }>(`/api/warnings${query({ project_id: project, limit })}`),
  overview: (project?: string, days = 7) =>
    call<Overview>(`/api/overview${query({ project_id: project, days })}`),
  fleet: (project?: string, include: "running" | "all" = "running") =>
    call<{ sessions: SessionSummary[]; total: number; ready: boolean }>(
      `/api/fleet${query({ project_id: project, include })}`,
    ),
  detail: (id: string) => call<Detail>(`/api/interventions/${encodeURIComponent(id)}`),
  resume: (id: string, resolved_by: string, resolution_notes: string, false_stop = false, false_stop_note = "") =>
    call<Intervention>(`/api/interventions/${encodeURIComponent(id)}/resume`, {
      method: "POST",
      body: JSON.stringify({ resolved_by, resolution_notes, false_stop, false_stop_note }),
    }),
  markFalseStop: (id: string, marked_by: string, note: string) =>
    call<{ false_stop: boolean; false_stop_by: string | null }>(`/api/interventions/${encodeURIComponent(id)}/false-stop`, {
      method: "POST",
      body: JSON.stringify({ marked_by, note }),
    }),
  projects: () => call<{ projects: { id: string; active: number; interventions: number }[] }>("/api/projects"),
  preferences: (project: string) =>
    call<{ source: string; preferences: Preferences }>(
      `/api/projects/${encodeURIComponent(project)}/notifications/preferences`,
    ),
  savePreferences: (project: string, preferences: Preferences) =>
    call<{ preferences: Preferences }>(`/api/projects/${encodeURIComponent(project)}/notifications/preferences`, {
      method: "POST",
      body: JSON.stringify(preferences),
    }),
};
