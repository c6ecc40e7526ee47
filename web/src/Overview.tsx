import { useMemo } from "react";
import type { ChartConfiguration } from "chart.js";
import type { Cost, Overview as OverviewData } from "./api";
import { ChartBox } from "./Chart";
import { STATUS_COLOURS, TRIGGER_COLOURS, duration } from "./format";

const NEUTRAL = "#667085";

function bucketLabel(iso: string, bucket: "hour" | "day"): string {
  const at = new Date(iso);
  return bucket === "hour"
    ? at.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
    : at.toLocaleDateString([], { month: "short", day: "numeric" });
}

function costChart(rows: Cost[], colour: string): ChartConfiguration {
  return {
    type: "bar",
    data: {
      labels: rows.map((r) => r.name),
      datasets: [{ label: "hours paused", data: rows.map((r) => +(r.paused_s / 3600).toFixed(2)), backgroundColor: colour }],
    },
    options: { indexAxis: "y", plugins: { legend: { display: false } } },
  };
}

/** What the period's interventions cost, from /api/overview (aggregated in PostgreSQL). */
export function Overview({ data, days, onDays }: { data: OverviewData | null; days: number; onDays: (d: number) => void }) {
  const charts = useMemo(() => {
    if (!data) return null;
    const labels = Array.from(new Set(data.over_time.map((p) => p.bucket))).sort();
    const triggers = Array.from(new Set(data.over_time.map((p) => p.trigger))).sort();
    const overTime: ChartConfiguration = {
      type: "bar",
      data: {
        labels: labels.map((b) => bucketLabel(b, data.bucket)),
        datasets: triggers.map((trigger) => ({
          label: trigger,
          backgroundColor: TRIGGER_COLOURS[trigger] ?? NEUTRAL,
          data: labels.map((b) => data.over_time.find((p) => p.bucket === b && p.trigger === trigger)?.count ?? 0),
        })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, ticks: { precision: 0 } } } },
    };
    const kinds = data.time_to_resume;
    const resume: ChartConfiguration = {
      type: "bar",
      data: {
        labels: kinds.map((k) => `${k.kind} (${k.count})`),
        datasets: [
          { label: "median, minutes", backgroundColor: "#2e90fa", data: kinds.map((k) => +(k.p50_s / 60).toFixed(1)) },
          { label: "90th percentile, minutes", backgroundColor: "#b2ddff", data: kinds.map((k) => +(k.p90_s / 60).toFixed(1)) },
        ],
      },
    };
    const outcomes = (["succeeded", "failed", "refused", "nothing_to_do", "attempted"] as const).filter((o) => data.recovery[o] > 0);
    const recovery: ChartConfiguration = {
      type: "doughnut",
      data: {
        labels: outcomes,
        datasets: [{ data: outcomes.map((o) => data.recovery[o]), backgroundColor: outcomes.map((o) => STATUS_COLOURS[o] ?? NEUTRAL) }],
      },
      options: { plugins: { legend: { position: "right" } } },
    };
    const channels = Array.from(new Set(data.notifications.map((n) => n.channel))).sort();
    const statuses = Array.from(new Set(data.notifications.map((n) => n.status))).sort();
    const notifications: ChartConfiguration = {
      type: "bar",
      data: {
        labels: channels,
        datasets: statuses.map((status) => ({
          label: status,
          backgroundColor: STATUS_COLOURS[status] ?? NEUTRAL,
          data: channels.map((c) => data.notifications.find((n) => n.channel === c && n.status === status)?.count ?? 0),
        })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, ticks: { precision: 0 } } } },
    };
    return {
      overTime,
      resume,
      recovery,
      notifications,
      projects: costChart(data.projects, "#7a5af8"),
      blockers: costChart(data.blockers, "#f04438"),
      clients: costChart(data.clients, "#0ba5ec"),
    };
  }, [data]);

  if (!data || !charts) return <p className="state">Loading…</p>;
  const human = data.time_to_resume.find((k) => k.kind === "human");
  const automatic = data.time_to_resume.find((k) => k.kind === "automatic");
  const rate = data.recovery.success_rate;
  const tiles: [string, string, string][] = [
    ["interventions", String(data.totals.interventions), `${data.totals.active} active · ${data.totals.resolved} resolved`],
    ["warnings", String(data.totals.warnings), "sessions told they were one step from a stop"],
    ["time to resume (human)", human ? duration(human.p50_s) : "—", human ? `median of ${human.count}` : "none yet"],
    ["time to resume (automatic)", automatic ? duration(automatic.p50_s) : "—", automatic ? `median of ${automatic.count}` : "none yet"],
    ["auto-recovery success", rate === null ? "—" : `${Math.round(rate * 100)} %`, `${data.recovery.succeeded} fixed · ${data.recovery.failed} failed`],
    ["false stops", String(data.totals.false_stops), "stops a human marked false"],
    ["would have stopped", String(data.totals.observed), "observe mode: recorded, not paused"],
  ];
  // (title, chart, test id, the rows it draws, what to say when there are none)
  const boxes: [string, ChartConfiguration, string, unknown[], string][] = [
    ["Interventions over time, by trigger", charts.overTime, "chart-over-time", data.over_time, "No interventions in this period."],
    ["Time to resume", charts.resume, "chart-resume", data.time_to_resume, "Nothing resumed in this period."],
    ["Automatic recovery outcomes", charts.recovery, "chart-recovery", outcomesOf(data), "Recovery has not acted in this period."],
    ["Notifications by channel", charts.notifications, "chart-notifications", data.notifications, "No notifications in this period."],
    ["Projects that cost the most (hours paused)", charts.projects, "chart-projects", data.projects, "No project was paused."],
    ["Blockers that cost the most (hours paused)", charts.blockers, "chart-blockers", data.blockers, "No blockers."],
    ["Agent CLIs that cost the most (hours paused)", charts.clients, "chart-clients", data.clients, "No session was paused."],
  ];
  return (
    <section data-testid="overview">
      <div className="row">
        <span className="muted">Since {new Date(data.since).toLocaleString()}</span>
        <span className="right" />
        {[1, 7, 30].map((d) => (
          <button key={d} className={d === days ? "tab current" : "tab"} onClick={() => onDays(d)} data-testid={`days-${d}`}>
            {d === 1 ? "24 h" : `${d} days`}
          </button>
        ))}
      </div>
      <div className="tiles">
        {tiles.map(([label, value, note]) => (
          <div className="tile" key={label} data-testid={`tile-${label.split(" ")[0]}`}>
            <span className="muted">{label}</span>
            <strong>{value}</strong>
            <span className="muted">{note}</span>
          </div>
        ))}
      </div>
      <div className="charts">
        {boxes.map(([title, config, testid, rows, none]) => (
          <div key={testid}>
            <ChartBox title={title} config={config} testid={testid} />
            {rows.length === 0 && <p className="muted empty-chart">{none}</p>}
          </div>
        ))}
      </div>
      <h3>How right the detector was, by project and trigger</h3>
      {data.judgement.length === 0 ? (
        <p className="muted">The detector stopped nothing in this period.</p>
      ) : (
        <table className="fleet" data-testid="judgement">
          <thead>
            <tr>
              <th>project</th>
              <th>trigger</th>
              <th>stops</th>
              <th>would have stopped (observe)</th>
              <th>false stops</th>
            </tr>
          </thead>
          <tbody>
            {data.judgement.map((j) => (
              <tr key={`${j.project_id}/${j.trigger}`} data-testid="judgement-row" data-project={j.project_id} data-trigger={j.trigger}>
                <td>{j.project_id}</td>
                <td>{j.trigger}</td>
                <td>{j.stops}</td>
                <td>{j.observed}</td>
                <td data-testid="false-stops">{j.false_stops}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function outcomesOf(data: OverviewData): number[] {
  const r = data.recovery;
  return [r.succeeded, r.failed, r.refused, r.nothing_to_do, r.attempted].filter((n) => n > 0);
}
