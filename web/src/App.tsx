import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  api,
  ApiError,
  token,
  type Detail,
  type FleetView,
  type Intervention,
  type Overview as OverviewData,
  type Preferences,
  type WarningsBody,
} from "./api";
import { Fleet } from "./Fleet";
import { TRIGGER_COLOURS, neutralise, since } from "./format";
import { Overview } from "./Overview";
import { AgentText } from "./Quoted";

type Tab = "overview" | "fleet" | "active" | "history" | "warnings" | "preferences";
const REFRESH_MS = 30_000;
const INTERVENTION_LINK = /^#\/interventions\/([^/]+)$/;

function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

/** The location's hash: notifications link to `#/interventions/<id>`. */
function useHash(): string {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const changed = () => setHash(window.location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

export function App() {
  const [tab, setTab] = useState<Tab>("overview");
  const [project, setProject] = useState("");
  const [projects, setProjects] = useState<string[]>([]);
  const [items, setItems] = useState<Intervention[] | null>(null);
  const [warnings, setWarnings] = useState<WarningsBody | null>(null);
  const [overview, setOverview] = useState<OverviewData | null>(null);
  const [days, setDays] = useState(7);
  const [fleet, setFleet] = useState<FleetView | null>(null);
  const [version, setVersion] = useState(0); // bumped by every live event: the linked view reloads
  const linked = INTERVENTION_LINK.exec(useHash())?.[1];
  const [error, setError] = useState("");
  const [live, setLive] = useState(false);
  const [resuming, setResuming] = useState<Intervention | null>(null);
  const [apiToken, setApiToken] = useState(token.get());
  const now = useNow();

  const load = useCallback(async () => {
    if (tab === "preferences") return;
    try {
      if (tab === "warnings") {
        setWarnings(await api.warnings(project || undefined));
      } else if (tab === "overview") {
        setOverview(await api.overview(project || undefined, days));
      } else if (tab === "fleet") {
        setFleet(await api.fleet(project || undefined));
      } else {
        const body = tab === "active" ? await api.active(project || undefined) : await api.history(project || undefined);
        setItems(body.interventions);
      }
      setError("");
      const list = await api.projects();
      setProjects(list.projects.map((p) => p.id));
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  }, [tab, project, apiToken, days]);

  const loadRef = useRef(load);
  loadRef.current = load;
  const tabRef = useRef(tab);
  tabRef.current = tab;
  useEffect(() => {
    setItems(null);
    setWarnings(null);
    setFleet(null);
    void load();
    const timer = setInterval(() => void loadRef.current(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [load]);

  // Instant updates: every intervention event refreshes the list. Each connection presents a
  // fresh single-use ticket, so a dropped stream reconnects with a new one.
  useEffect(() => {
    let source: EventSource | undefined;
    let retry: number | undefined;
    let closed = false;
    let pending: number | undefined;
    const refresh = (event: Event) => {
      // "fleet" (at most once a second while agents work) matters only to the fleet view.
      if (event.type === "fleet" && tabRef.current !== "fleet") return;
      if (event.type !== "fleet") setVersion((v) => v + 1);
      window.clearTimeout(pending);
      pending = window.setTimeout(() => void loadRef.current(), 150);
    };
    const connect = async () => {
      let url = "/api/events";
      try {
        url += `?ticket=${encodeURIComponent((await api.eventsTicket()).ticket)}`;
      } catch {
        setLive(false);
        retry = window.setTimeout(() => void connect(), 3000);
        return;
      }
      if (closed) return;
      source = new EventSource(url);
      for (const kind of ["warned", "detected", "paused", "acknowledged", "snoozed", "resumed", "notified", "recovery", "fleet"]) source.addEventListener(kind, refresh);
      source.onopen = () => setLive(true);
      source.onerror = () => {
        setLive(false);
        source?.close();
        if (!closed) retry = window.setTimeout(() => void connect(), 2000);
      };
    };
    void connect();
    return () => {
      closed = true;
      window.clearTimeout(retry);
      source?.close();
    };
  }, [apiToken]);

  // A change no live event announces (a false stop marked after the fact): reload what is shown.
  const reload = () => {
    setVersion((v) => v + 1);
    void load();
  };
  const onResumed = (id: string) => {
    setItems((current) => (tab === "active" && current ? current.filter((i) => i.id !== id) : current));
    setResuming(null);
    reload();
  };

  return (
    <div className="page">
      <header>
        <h1>YokeFlow Intervention</h1>
        <span className={live ? "live on" : "live"} data-testid="live">
          {live ? "● live" : "○ reconnecting"}
        </span>
        <label className="token">
          API token
          <input
            type="password"
            value={apiToken}
            placeholder="if the API needs one"
            onChange={(e) => {
              setApiToken(e.target.value);
              token.set(e.target.value);
            }}
          />
        </label>
      </header>
      <nav>
        {(["overview", "fleet", "active", "history", "warnings", "preferences"] as Tab[]).map((t) => (
          <button
            key={t}
            className={tab === t && !linked ? "tab current" : "tab"}
            onClick={() => {
              if (linked) window.location.hash = "";
              setTab(t);
            }}
            data-testid={`tab-${t}`}
          >
            {TAB_NAMES[t]}
          </button>
        ))}
        <select value={project} onChange={(e) => setProject(e.target.value)} data-testid="project-filter">
          <option value="">All projects</option>
          {projects.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </nav>
      <main>
        {linked ? (
          <Linked id={decodeURIComponent(linked)} now={now} version={version} onResume={setResuming} onChanged={reload} />
        ) : tab === "preferences" ? (
          <PreferencesEditor project={project} projects={projects} />
        ) : error ? (
          <p className="state error" data-testid="error">
            Could not load interventions: {error}
          </p>
        ) : tab === "overview" ? (
          <Overview data={overview} days={days} onDays={setDays} />
        ) : tab === "fleet" ? (
          <Fleet body={fleet} now={now} />
        ) : tab === "warnings" ? (
          <Warnings body={warnings} now={now} />
        ) : items === null ? (
          <p className="state">Loading…</p>
        ) : items.length === 0 ? (
          <p className="state" data-testid="empty">
            {tab === "active" ? "No session is paused. Agents are working." : "No interventions yet."}
          </p>
        ) : (
          items.map((item) => <Card key={item.id} item={item} now={now} onResume={() => setResuming(item)} onChanged={reload} />)
        )}
      </main>
      {resuming && <ResumeDialog item={resuming} onClose={() => setResuming(null)} onResumed={onResumed} />}
    </div>
  );
}

const TAB_NAMES: Record<Tab, string> = {
  overview: "Overview",
  fleet: "Fleet",
  active: "Active",
  history: "History",
  warnings: "Warnings",
  preferences: "Notification preferences",
};

/** Sessions told they were one step from a stop, and whether they changed course in time. */
function Warnings({ body, now }: { body: WarningsBody | null; now: number }) {
  if (body === null) return <p className="state">Loading…</p>;
  if (body.warnings.length === 0)
    return (
      <p className="state" data-testid="empty">
        No warnings yet: no session has been one step from a stop.
      </p>
    );
  const stopped = body.warnings.filter((w) => w.stopped_after).length;
  return (
    <>
      <p className="summary" data-testid="warnings-summary">
        {body.total} {body.total === 1 ? "warning" : "warnings"}; of the latest {body.warnings.length},{" "}
        {body.warnings.length - stopped} not stopped since and {stopped} stopped anyway
      </p>
      {body.warnings.map((w) => (
        <div className="card warning" key={w.warning_id} data-testid="warning" data-id={w.warning_id}>
          <div className="row">
            <span className="badge blocker">{w.trigger}</span>
            <strong>{w.project_id}</strong>
            <span className="muted">session {w.session_id}</span>
            <span className={w.stopped_after ? "badge stopped" : "badge recovered"} data-testid="warning-outcome">
              {w.stopped_after ? "stopped anyway" : "not stopped"}
            </span>
            <span className="muted right">warned {since(w.detected_at, now)} ago</span>
          </div>
          <p className="reason">
            <AgentText text={w.reason} />
          </p>
          <p className="muted">Told the agent: {w.advice}</p>
        </div>
      ))}
    </>
  );
}

/** One intervention on a page of its own: where a notification's link leads. */
function Linked({
  id,
  now,
  version,
  onResume,
  onChanged,
}: {
  id: string;
  now: number;
  version: number;
  onResume: (i: Intervention) => void;
  onChanged: () => void;
}) {
  const [detail, setDetail] = useState<Detail | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api.detail(id).then(
      (found) => {
        setDetail(found);
        setError("");
      },
      (e) => setError(e instanceof ApiError ? e.message : String(e)),
    );
  }, [id, version]);
  return (
    <section data-testid="linked">
      <p>
        <a href="#/">← all interventions</a>
      </p>
      {error ? (
        <p className="state error" data-testid="error">
          Could not load intervention {id}: {error}
        </p>
      ) : detail === null ? (
        <p className="state">Loading…</p>
      ) : (
        <Card key={`${detail.id}-${version}`} item={detail} now={now} onResume={() => onResume(detail)} onChanged={onChanged} initial={detail} />
      )}
    </section>
  );
}

function Card({
  item,
  now,
  onResume,
  onChanged,
  initial = null,
}: {
  item: Intervention;
  now: number;
  onResume: () => void;
  onChanged: () => void;
  initial?: Detail | null;
}) {
  const [detail, setDetail] = useState<Detail | null>(initial);
  const [open, setOpen] = useState(initial !== null);
  const colour = TRIGGER_COLOURS[item.pause_type] ?? "#667085";
  const excerpt = item.blocker_info?.error_excerpt;
  const toggle = async () => {
    setOpen(!open);
    if (!open) setDetail(await api.detail(item.id));
  };
  return (
    <article className="card" style={{ borderLeftColor: colour }} data-testid="card" data-id={item.id}>
      <div className="row">
        <span className="badge" style={{ background: colour }}>
          {item.pause_type}
        </span>
        {item.blocker_type && <span className="badge blocker">{item.blocker_type}</span>}
        {item.mode === "observe" && (
          <span className="badge observed" data-testid="would-have-stopped" title="observe mode: the session ran on and nobody was paged">
            would have stopped
          </span>
        )}
        {item.false_stop && (
          <span className="badge false-stop" data-testid="false-stop-badge" title={item.false_stop_note || undefined}>
            false stop · {item.false_stop_by}
          </span>
        )}
        <strong>{item.project_id}</strong>
        <span className="muted">session {item.session_id}</span>
        {item.blocker_info?.client && (
          <span className="muted" data-testid="client">
            agent {item.blocker_info.client}
          </span>
        )}
        <a className="muted" href={`#/interventions/${encodeURIComponent(item.id)}`} title="a link to this intervention">
          #{item.id.slice(0, 8)}
        </a>
        <span className="muted right" data-testid="since">
          {item.mode === "observe"
            ? "observe mode: not paused, nobody paged"
            : item.resolved
              ? `resolved by ${item.resolved_by}`
              : `paused ${since(item.paused_at, now)} ago`}
        </span>
      </div>
      {!item.resolved && item.acknowledged_by && (
        <p className="muted" data-testid="acknowledged">
          acknowledged by {item.acknowledged_by} via {item.acknowledged_via}
          {item.snoozed_until && Date.parse(item.snoozed_until) > now ? ` · snoozed until ${item.snoozed_until.slice(11, 16)} UTC` : ""}
        </p>
      )}
      <p className="reason">
        <AgentText text={item.pause_reason} />
      </p>
      {excerpt && <AgentText text={excerpt} block />}
      <div className="row muted">
        <span>
          retries {item.retry_stats.total_retries} · max on one command {item.retry_stats.max_retries_on_single_command} ·
          unique errors {item.retry_stats.unique_errors}
        </span>
        {item.current_task_id && (
          <span>
            task <AgentText text={`${item.current_task_id}: ${item.current_task_description ?? ""}`} />
          </span>
        )}
      </div>
      {item.resolution_notes &&
        (item.resolution_source === "automatic" ? (
          <div className="automatic" data-testid="automatic-notes">
            What automatic recovery did (not a human's notes; it quotes the agent's processes):{" "}
            <AgentText text={item.resolution_notes} />
          </div>
        ) : (
          <p className="notes" data-testid="human-notes">
            Notes: {neutralise(item.resolution_notes)}
          </p>
        ))}
      {item.resolved && item.mode === "enforce" && (
        <p className="muted" data-testid="next-session">
          {item.next_session_id
            ? `Next session ${item.next_session_id} started with the resume brief.`
            : "No next session started here (no agent_command): the resume brief waits for the agent's next session."}
        </p>
      )}
      <div className="row">
        <button onClick={() => void toggle()}>{open ? "Hide audit trail" : "Audit trail"}</button>
        {!item.resolved && (
          <button className="primary" onClick={onResume} data-testid="resume">
            Resume…
          </button>
        )}
        {item.resolved && !item.false_stop && <MarkFalseStop id={item.id} onMarked={onChanged} />}
      </div>
      {open && detail && (
        <ul className="trail" data-testid="trail">
          {detail.actions.map((a) => (
            <li key={a.id}>
              <span className="muted">{new Date(a.created_at).toLocaleTimeString()}</span> {a.action_type}:{" "}
              <strong>{a.action_status}</strong>{" "}
              {(a.action_details.detail ?? a.action_details.reason) != null && (
                <span className="muted">
                  <AgentText text={String(a.action_details.detail ?? a.action_details.reason)} />
                </span>
              )}
            </li>
          ))}
          {detail.notifications.map((n) => (
            <li key={`${n.channel}-${n.recipient}`}>
              notification {n.channel} → {n.recipient}: <strong>{n.status}</strong>{" "}
              <span className="muted">
                {n.attempts} attempt(s) {neutralise(n.detail)}
              </span>
            </li>
          ))}
        </ul>
      )}
    </article>
  );
}

/** Mark a stop false after the fact (resumed already, or observed): the overview counts it. */
function MarkFalseStop({ id, onMarked }: { id: string; onMarked: () => void }) {
  const [open, setOpen] = useState(false);
  const [by, setBy] = useState("");
  const [note, setNote] = useState("");
  const [error, setError] = useState("");
  const mark = async () => {
    try {
      await api.markFalseStop(id, by.trim(), note.trim());
      setOpen(false);
      onMarked();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  if (!open)
    return (
      <button onClick={() => setOpen(true)} data-testid="mark-false-stop">
        False stop…
      </button>
    );
  return (
    <span className="row">
      <input placeholder="marked by" value={by} onChange={(e) => setBy(e.target.value)} data-testid="false-stop-by" />
      <input placeholder="why (optional)" value={note} onChange={(e) => setNote(e.target.value)} data-testid="false-stop-why" />
      <button className="primary" disabled={!by.trim()} onClick={() => void mark()} data-testid="false-stop-confirm">
        Mark as false stop
      </button>
      {error && <span className="error">{error}</span>}
    </span>
  );
}

function ResumeDialog({ item, onClose, onResumed }: { item: Intervention; onClose: () => void; onResumed: (id: string) => void }) {
  const [by, setBy] = useState("");
  const [notes, setNotes] = useState("");
  const [falseStop, setFalseStop] = useState(false);
  const [falseStopNote, setFalseStopNote] = useState("");
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const valid = by.trim() && notes.trim();
  const submit = async () => {
    setBusy(true);
    try {
      await api.resume(item.id, by.trim(), notes.trim(), falseStop, falseStop ? falseStopNote.trim() : "");
      onResumed(item.id);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
      setConfirming(false);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="backdrop" role="dialog" aria-label="Resume session">
      <div className="dialog">
        <h2>Resume {item.session_id}</h2>
        <p className="muted">
          <AgentText text={item.pause_reason} />
        </p>
        <label>
          Resolved by
          <input value={by} onChange={(e) => setBy(e.target.value)} data-testid="resolved-by" />
        </label>
        <label>
          Resolution notes (the agent's next session reads them)
          <textarea rows={5} value={notes} onChange={(e) => setNotes(e.target.value)} data-testid="notes" />
        </label>
        <label className="check">
          <input type="checkbox" checked={falseStop} onChange={(e) => setFalseStop(e.target.checked)} data-testid="false-stop" />
          A false stop: the session was not stuck (counted per trigger and project on the overview)
        </label>
        {falseStop && (
          <label>
            Why it was not stuck (optional)
            <input value={falseStopNote} onChange={(e) => setFalseStopNote(e.target.value)} data-testid="false-stop-note" />
          </label>
        )}
        {error && (
          <p className="error" data-testid="resume-error">
            {error}
          </p>
        )}
        <div className="row">
          <button onClick={onClose}>Cancel</button>
          {!confirming ? (
            <button className="primary" disabled={!valid} onClick={() => setConfirming(true)} data-testid="resume-submit">
              Resume session
            </button>
          ) : (
            <button className="primary" disabled={busy} onClick={() => void submit()} data-testid="resume-confirm">
              {falseStop ? "Confirm: resume, marked a false stop" : "Confirm: resume with these notes"}
            </button>
          )}
        </div>
      </div>
    </div>
  );
}

const BOOLEAN_FIELDS: [keyof Preferences, string][] = [
  ["webhook_enabled", "Webhook (Slack, Discord or JSON)"],
  ["email_enabled", "Email"],
  ["sms_enabled", "SMS"],
  ["notify_on_retry_limit", "Notify on retry limit and loops"],
  ["notify_on_critical_error", "Notify on critical errors"],
  ["notify_on_timeout", "Notify on session time budget"],
  ["notify_on_manual_pause", "Notify on manual pauses"],
];

function PreferencesEditor({ project, projects }: { project: string; projects: string[] }) {
  const [chosen, setChosen] = useState(project);
  const [prefs, setPrefs] = useState<Preferences | null>(null);
  const [source, setSource] = useState("");
  const [fields, setFields] = useState<Record<string, string>>({});
  const [message, setMessage] = useState("");
  const options = useMemo(() => Array.from(new Set([project, ...projects].filter(Boolean))), [project, projects]);

  useEffect(() => {
    if (!chosen && options.length) setChosen(options[0]);
  }, [chosen, options]);
  useEffect(() => {
    if (!chosen) return;
    setPrefs(null);
    api.preferences(chosen).then((body) => {
      setPrefs(body.preferences);
      setSource(body.source);
    }, (e) => setMessage(String(e)));
  }, [chosen]);

  if (!chosen) return <p className="state">No project yet: preferences appear once an agent has started a session.</p>;
  if (!prefs) return <p className="state">Loading…</p>;
  const save = async () => {
    setFields({});
    setMessage("");
    try {
      const body = await api.savePreferences(chosen, prefs);
      setPrefs(body.preferences);
      setSource("project");
      setMessage("Saved.");
    } catch (e) {
      if (e instanceof ApiError) {
        setFields(e.fields);
        setMessage(e.message);
      }
    }
  };
  const list = (key: "email_addresses" | "sms_numbers") => (
    <label>
      {key === "email_addresses" ? "Email addresses (comma separated)" : "SMS numbers, E.164 (comma separated)"}
      <input
        value={prefs[key].join(", ")}
        onChange={(e) => setPrefs({ ...prefs, [key]: e.target.value.split(",").map((s) => s.trim()).filter(Boolean) })}
        data-testid={key}
      />
      {fields[key] && <span className="error">{fields[key]}</span>}
    </label>
  );
  return (
    <section className="prefs" data-testid="preferences">
      <label>
        Project
        <select value={chosen} onChange={(e) => setChosen(e.target.value)} data-testid="preferences-project">
          {options.map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </label>
      <p className="muted">{source === "project" ? "This project's own preferences." : "Defaults from the configuration."}</p>
      {BOOLEAN_FIELDS.map(([key, label]) => (
        <label key={key} className="check">
          <input type="checkbox" checked={Boolean(prefs[key])} onChange={(e) => setPrefs({ ...prefs, [key]: e.target.checked })} data-testid={key} />
          {label}
        </label>
      ))}
      <label>
        Webhook URL
        <input value={prefs.webhook_url ?? ""} onChange={(e) => setPrefs({ ...prefs, webhook_url: e.target.value || null })} data-testid="webhook_url" />
        {fields.webhook_url && <span className="error">{fields.webhook_url}</span>}
      </label>
      {list("email_addresses")}
      {list("sms_numbers")}
      <label>
        At most one notification every (seconds)
        <input
          type="number"
          value={prefs.min_notification_interval}
          onChange={(e) => setPrefs({ ...prefs, min_notification_interval: Number(e.target.value) })}
          data-testid="min_notification_interval"
        />
        {fields.min_notification_interval && <span className="error">{fields.min_notification_interval}</span>}
      </label>
      <button className="primary" onClick={() => void save()} data-testid="save-preferences">
        Save preferences
      </button>
      {message && <p data-testid="preferences-message">{message}</p>}
    </section>
  );
}
