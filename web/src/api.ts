// The dashboard's calls to the YokeFlow Intervention API (same origin: the API serves this
// dashboard). Every type and call comes from the client generated from docs/openapi.json
// (src/client, `make web-client`); this file only adds the token and turns a failed call into
// an ApiError the views can show.

import { client } from "./client/client.gen";
import * as sdk from "./client/sdk.gen";
import type { NotificationPreferencesInput, SessionSummary } from "./client/types.gen";

export type {
  Cost,
  FleetView,
  Intervention,
  InterventionDetail as Detail,
  NotificationPreferencesOutput as Preferences,
  Overview,
  Warnings as WarningsBody,
} from "./client/types.gen";
export type RiskKind = NonNullable<SessionSummary["nearest"]>;

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

client.setConfig({ baseUrl: "" });
client.interceptors.request.use((request) => {
  if (token.get()) request.headers.set("Authorization", `Bearer ${token.get()}`);
  return request;
});

/** The body of a successful call, or an ApiError naming what went wrong (each field's
 * message when the API refused the values). */
async function ok<T>(call: Promise<{ data: T | undefined; error?: unknown; response?: Response }>): Promise<T> {
  let result: Awaited<typeof call>;
  try {
    result = await call;
  } catch {
    throw new ApiError("The API cannot be reached.", 0);
  }
  const { data, error, response } = result;
  if (!response) throw new ApiError("The API cannot be reached.", 0);
  if (data !== undefined && response.ok) return data;
  const detail = typeof error === "object" && error !== null && "detail" in error ? error.detail : undefined;
  if (Array.isArray(detail)) {
    const fields: Record<string, string> = {};
    for (const item of detail) fields[String(item.loc?.[item.loc.length - 1])] = item.msg;
    throw new ApiError("Some values are not valid.", response.status, fields);
  }
  throw new ApiError(typeof detail === "string" ? detail : response.statusText, response.status);
}

const id = (intervention_id: string) => ({ path: { intervention_id } });

export const api = {
  // A single-use ticket for the live stream: an EventSource cannot send the token as a header.
  eventsTicket: () => ok(sdk.eventsTicket()),
  active: (project?: string) => ok(sdk.interventionsActive({ query: { project_id: project } })),
  history: (project?: string, limit = 50, offset = 0) =>
    ok(sdk.interventionsHistory({ query: { project_id: project, limit, offset } })),
  warnings: (project?: string, limit = 50) => ok(sdk.warningsList({ query: { project_id: project, limit } })),
  overview: (project?: string, days = 7) => ok(sdk.overviewGet({ query: { project_id: project, days } })),
  fleet: (project?: string, include: "running" | "all" = "running") =>
    ok(sdk.fleetList({ query: { project_id: project, include } })),
  detail: (intervention: string) => ok(sdk.interventionsDetail(id(intervention))),
  resume: (intervention: string, resolved_by: string, resolution_notes: string, false_stop = false, false_stop_note = "") =>
    ok(
      sdk.interventionsResume({
        ...id(intervention),
        body: { resolved_by, resolution_notes, false_stop, false_stop_note },
      }),
    ),
  markFalseStop: (intervention: string, marked_by: string, note: string) =>
    ok(sdk.interventionsMarkFalseStop({ ...id(intervention), body: { marked_by, note } })),
  projects: () => ok(sdk.projectsList()),
  preferences: (project: string) =>
    ok(sdk.projectsGetPreferences({ path: { project_id: project } })),
  savePreferences: (project: string, preferences: NotificationPreferencesInput) =>
    ok(
      sdk.projectsSetPreferences({
        path: { project_id: project },
        body: preferences,
      }),
    ),
};
