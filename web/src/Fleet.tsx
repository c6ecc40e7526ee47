import type { FleetView, RiskKind } from "./api";
import { duration, since } from "./format";
import { AgentText } from "./Quoted";

const LIMIT_NAMES: Record<string, string> = {
  retry_limit: "retry limit",
  error_rate: "error rate",
  session_duration: "time budget",
  no_progress: "no progress",
};

function level(risk: number): "stop" | "near" | "ok" {
  return risk >= 1 ? "stop" : risk >= 0.6 ? "near" : "ok";
}

function Meter({ share, label }: { share: number; label: string }) {
  return (
    <span className="meter" title={label}>
      <span className={`fill ${level(share)}`} style={{ width: `${Math.min(share, 1) * 100}%` }} />
      <span className="meter-label">{label}</span>
    </span>
  );
}

/** Running sessions and how close each is to a stop (the detector's summaries, live). */
export function Fleet({ body, now }: { body: FleetView | null; now: number }) {
  if (body === null) return <p className="state">Loading…</p>;
  if (body.sessions.length === 0)
    return (
      <p className="state" data-testid="empty">
        {body.ready ? "No session is running: agents report here as soon as they start." : "Reading the detector's summaries…"}
      </p>
    );
  return (
    <>
      <p className="summary" data-testid="fleet-summary">
        {body.total} running {body.total === 1 ? "session" : "sessions"}, nearest to a stop first
        {body.total > body.sessions.length ? ` (the first ${body.sessions.length})` : ""}
      </p>
      <table className="fleet" data-testid="fleet">
        <thead>
          <tr>
            <th>session</th>
            <th>nearest stop</th>
            <th>retry streak</th>
            <th>error rate</th>
            <th>time used</th>
            <th>warned of</th>
            <th>last event</th>
          </tr>
        </thead>
        <tbody>
          {body.sessions.map((s) => {
            const share = (kind: RiskKind) => s.shares[kind] ?? 0; // the detector's figures
            return (
              <tr key={`${s.project_id}/${s.session_id}`} className={level(s.risk)} data-testid="fleet-row" data-session={s.session_id}>
                <td>
                  <strong>{s.project_id}</strong>
                  <div className="muted">{s.session_id}</div>
                  {s.client && (
                    <div className="muted" data-testid="client">
                      agent: <AgentText text={s.client} />
                    </div>
                  )}
                  {s.task && (
                    <div className="muted">
                      task <AgentText text={`${s.task.id}: ${s.task.description}`} />
                    </div>
                  )}
                  {s.state === "running" && s.intervention_id && (
                    <span className="badge observed" data-testid="fleet-would-have-stopped" title="observe mode: it runs on">
                      would have stopped
                    </span>
                  )}
                  {s.waiting && (
                    <div className="waiting" data-testid="waiting">
                      <span className="badge near">waiting for a person</span> <AgentText text={s.waiting} />
                    </div>
                  )}
                </td>
                <td data-testid="nearest">
                  <span className={`badge risk ${level(s.risk)}`}>{Math.round(s.risk * 100)} %</span>{" "}
                  {s.nearest ? LIMIT_NAMES[s.nearest] : "—"}
                </td>
                <td data-testid="retry">
                  <Meter share={share("retry_limit")} label={`${s.retry_streak} of ${s.max_retries}`} />
                </td>
                <td>
                  <Meter
                    share={share("error_rate")}
                    label={`${Math.round(s.error_rate * 100)} % of ${s.results} (${s.shares.error_rate === undefined ? "no budget" : `budget ${Math.round(s.error_rate_threshold * 100)} %`})`}
                  />
                </td>
                <td>
                  <Meter share={share("session_duration")} label={s.shares.session_duration === undefined ? `${duration(s.elapsed_s)} (no budget)` : `${duration(s.elapsed_s)} of ${duration(s.duration_limit_s)}`} />
                </td>
                <td data-testid="warned">{s.warnings.length ? s.warnings.join(", ") : <span className="muted">—</span>}</td>
                <td className="muted">{s.last_event_at ? `${since(s.last_event_at, now)} ago` : "—"}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}
