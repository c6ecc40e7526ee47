"""`yokeflow-intervention`: one command for operators, agents and CI."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yokeflow_intervention.shared.settings import Settings

__all__ = ["build_parser", "main"]


def _detect(args: argparse.Namespace, settings: Settings) -> int:
    from yokeflow_intervention.services.detector.rules import DetectionConfig
    from yokeflow_intervention.services.detector.sessions import (
        intervention_json,
        project_configs,
        replay,
    )
    from yokeflow_intervention.services.detector.transcripts import read_transcript

    path = Path(args.events)
    if not path.is_file():
        print(f"detect: {path}: no such file", file=sys.stderr)
        return 2
    now = None
    if args.now is not None:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            pass
        if now is None or now.tzinfo is None:
            print(
                f"detect: --now {args.now!r} is not an RFC 3339 time with a timezone",
                file=sys.stderr,
            )
            return 2
    config = DetectionConfig.from_settings(settings)
    try:
        events = read_transcript(path, args.format, args.project)
        for intervention in replay(events, config, project_configs(settings), now):
            print(intervention_json(intervention))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"detect: {path}: cannot read: {exc}", file=sys.stderr)
        return 2
    return 0


async def _publish(path: Path, settings: Settings) -> int:
    from yokeflow_agent.contract import Subjects

    from yokeflow_intervention.services.detector.sessions import (
        Clock,
        ReplayProblem,
        read_event_file,
    )
    from yokeflow_intervention.shared.bus import connect
    from yokeflow_intervention.shared.runtime import ServiceContext

    nc = await connect(ServiceContext("cli", settings).nats_url, "yokeflow-cli", persistent=False)
    js = nc.jetstream()
    published = skipped = 0
    try:
        for item in read_event_file(path):
            if isinstance(item, ReplayProblem):
                print(f"line {item.line}: skipped: {item.reason}", file=sys.stderr)
                skipped += 1
                continue
            if isinstance(item, Clock):  # the bus keeps its own time
                continue
            body = item.model_dump_json(exclude_none=True).encode()
            subject = Subjects.agent_events(item.project_id, item.session_id)
            await js.publish(subject, body, headers={"Nats-Msg-Id": item.event_id})
            published += 1
            if published % 1000 == 0:
                print(f"published {published} events...", file=sys.stderr)
    finally:
        await nc.close()
    print(f"published {published} events from {path} ({skipped} skipped)")
    return 0 if published or not skipped else 1


async def _status(settings: Settings) -> int:
    from yokeflow_agent.contract import CONSUMERS, STREAMS

    from yokeflow_intervention.shared.bus import (
        OPEN_BUS_WARNING,
        connect,
        is_open,
        redact_credentials,
    )
    from yokeflow_intervention.shared.commands import CommandFailed, PauserClient
    from yokeflow_intervention.shared.runtime import ServiceContext

    context = ServiceContext("cli", settings)
    nc = await connect(context.nats_url, "yokeflow-cli", persistent=False)
    try:
        js = nc.jetstream()
        print(f"NATS      {redact_credentials(context.nats_url)}  (connected)")
        if is_open(nc):
            print(f"WARNING   {OPEN_BUS_WARNING}")
        for spec in STREAMS:
            info = await js.stream_info(spec.name)
            limit = info.config.max_bytes or -1
            held = (
                f"  {info.state.bytes / 2**20:.1f} of {limit / 2**20:.0f} MiB" if limit > 0 else ""
            )
            print(f"stream    {spec.name:14} {info.state.messages:>8} messages{held}")
        for consumer in CONSUMERS.all():
            c = await js.consumer_info(consumer.stream, consumer.durable)
            print(
                f"consumer  {consumer.durable:18} pending {c.num_pending:>6}  "
                f"unacked {c.num_ack_pending:>4}  "
                f"delivered to: {'yes' if c.push_bound else 'no one'}"
            )
        try:
            active = await PauserClient(nc, timeout=3).get_active_pauses()
            print(f"pauser    answering; {len(active)} active intervention(s)")
            for row in active[:10]:
                print(
                    f"  - {row['id']}  {row['project_id']}/{row['session_id']}  "
                    f"{row['pause_reason'][:70]}"
                )
        except CommandFailed as exc:
            print(f"pauser    {exc}")
    finally:
        await nc.close()
    return 0


async def _watch(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from yokeflow_intervention.shared.runtime import ServiceContext

    from .watch import use_colour, watch

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    colour = use_colour(sys.stdout, args.colour)
    await watch(ServiceContext("cli", settings).nats_url, sys.stdout, colour, stop)
    return 0


async def _interventions(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "watch":
        return await _watch(args, settings)
    from yokeflow_intervention.shared.bus import connect
    from yokeflow_intervention.shared.commands import CommandFailed, PauserClient
    from yokeflow_intervention.shared.provenance import AGENT_MARK, quoted_line
    from yokeflow_intervention.shared.runtime import ServiceContext

    nc = await connect(ServiceContext("cli", settings).nats_url, "yokeflow-cli", persistent=False)
    client = PauserClient(nc)
    try:
        result: Any
        if args.action == "list":
            if args.history:
                result = await client.get_intervention_history(args.project, args.limit)
            else:
                result = await client.get_active_pauses(args.project)
            if args.json:
                print(json.dumps(result, indent=2))
            elif not result:
                print("no interventions")
            for row in [] if args.json else result:
                state = f"resolved by {row['resolved_by']}" if row["resolved"] else "ACTIVE"
                if row.get("mode") == "observe":
                    state = "WOULD HAVE STOPPED (observe mode)"
                if row.get("false_stop"):
                    state += f", false stop (marked by {row['false_stop_by']})"
                print(
                    f"{row['id']}  {row['paused_at'][:19]}  "
                    f"{row['project_id']}/{row['session_id']}  "
                    f"{row['pause_type']:16} {state}\n"
                    f"    {AGENT_MARK}: {quoted_line(row['pause_reason'])}"
                )
        elif args.action == "show":
            print(json.dumps(await client.get_intervention(args.id), indent=2))
        elif args.action == "resume":
            row = await client.resume_session(
                args.id, args.by, args.notes, args.false_stop, args.false_stop_note
            )
            false_stop = ", marked a false stop" if row["false_stop"] else ""
            who = f"(session {row['session_id']}) by {row['resolved_by']}"
            print(f"resumed {row['id']} {who}{false_stop}")
        elif args.action == "mark-false-stop":
            row = await client.mark_false_stop(args.id, args.by, args.note)
            what = f"({row['pause_type']}, project {row['project_id']})"
            print(f"{row['id']} {what} is a false stop, marked by {row['false_stop_by']}")
        elif args.action == "ack":
            row = await client.acknowledge(args.id, args.by, "cli")
            if row["changed"]:
                print(f"acknowledged {row['id']} (session {row['session_id']}) by {args.by}")
            else:
                first = f"{row['acknowledged_by']} ({row['acknowledged_via']})"
                print(f"{row['id']} was already acknowledged by {first}")
        elif args.action == "pause":
            row = await client.pause_session(args.project, args.session, args.reason, args.by)
            print(f"paused session {row['session_id']}: intervention {row['id']}")
    except CommandFailed as exc:
        print(f"interventions {args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        await nc.close()
    return 0


def _credentials(args: argparse.Namespace, settings: Settings) -> int:
    """`agents add|list|revoke PROJECT` and `consumers add|list|revoke NAME`: users of the bus
    with exactly their role's permissions (docs/security.md)."""
    import re
    import secrets

    from yokeflow_intervention.shared.embedded import EmbeddedNats
    from yokeflow_intervention.shared.roles import (
        SERVICES_ACCOUNT,
        EmbeddedBus,
        agent_account,
        agent_account_config,
        consumer_account,
        consumer_account_config,
        with_credentials,
    )

    kind = args.command  # agents or consumers
    name: str = getattr(args, "name", "")
    if args.action != "list" and not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", name):
        print(f"{kind}: {name!r} is not an id ([A-Za-z0-9_-], at most 128)", file=sys.stderr)
        return 2
    user = f"{kind[:-1]}-{name}"
    if settings.nats_url is not None:
        # An existing NATS: its operators apply the user to the server's configuration.
        if args.action != "add":
            print(
                f"{kind} {args.action}: the configured NATS keeps its own users (add the user "
                f"`agents add {name}` prints, then write the client's hooks with its URL as "
                "docs/agents.md shows)",
                file=sys.stderr,
            )
            return 2
        password = secrets.token_urlsafe(24)
        # An account of its own, beside the services' (docs/security.md).
        entry = (
            {agent_account(name): agent_account_config(name, password)}
            if kind == "agents"
            else {consumer_account(name): consumer_account_config(name, password)}
        )
        print(
            f"# add to the server's `accounts {{ ... }}` (beside {SERVICES_ACCOUNT}), then "
            "reload it twice (a new account's imports apply from the second reload):"
        )
        print(json.dumps(entry, indent=2))
        print(f"# {user} connects with: nats://{user}:{password}@<your NATS host>:4222")
        return 0
    folder = settings.data_dir.resolve() / "nats"
    bus = EmbeddedBus(folder)
    credentials = bus.credentials()
    stored = credentials.agents if kind == "agents" else credentials.consumers
    if args.action == "list":
        for each in sorted(stored):
            print(each)
        return 0
    server = EmbeddedNats(folder)
    running = server.attach()
    if args.action == "revoke":
        if stored.pop(name, None) is None:
            print(f"{kind} revoke: {name} has no credentials", file=sys.stderr)
            return 1
        bus.write(credentials)
        if running:
            server.reload()
        print(f"revoked {user}: its connections are refused from now on")
        return 0
    password = credentials.add_agent(name) if kind == "agents" else credentials.add_consumer(name)
    bus.write(credentials)
    if running:
        server.reload()
    address = server.url if running else "nats://127.0.0.1:<port of `up`>"
    url = with_credentials(address, user, password)
    if args.action == "connect":
        if not running:
            print(
                f"agents connect: the bus is not running: start `yokeflow-intervention up` "
                f"first, so the URL written for {args.client} is the one it answers on",
                file=sys.stderr,
            )
            return 1
        return _connect_client(args, name, url)
    print(url)
    return 0


def _connect_client(args: argparse.Namespace, project: str, url: str) -> int:
    """`agents connect PROJECT CLIENT`: the client's hook configuration, with the project's
    agent credentials, where the client reads it for the user this runs as."""
    from yokeflow_agent.adapters import connect

    root = Path(args.dir or ".").resolve()
    settings = {"NATS_URL": url, "YOKEFLOW_PROJECT_ID": project}
    if args.scope == "project":
        settings["YOKEFLOW_PROJECT_ROOT"] = str(root)  # the stable root, wherever the agent cd-s
    try:
        written = connect(args.client, args.scope, str(root), str(Path.home()), settings)
    except (OSError, ValueError) as exc:
        print(f"agents connect: {exc}", file=sys.stderr)
        return 1
    print(f"connected {args.client} to project {project} ({args.scope} scope):")
    for line in written:
        print(f"  {line}")
    print(f"check it with: cd {root} && yokeflow-hook --check --client {args.client}")
    return 0


def _provision(settings: Settings) -> int:
    from .up import prepare_infrastructure

    prepare_infrastructure(settings)
    return 0


def _service(name: str) -> int:
    import importlib

    importlib.import_module(f"yokeflow_intervention.services.{name}.main").main()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from yokeflow_intervention.services.detector.transcripts import FORMATS
    from yokeflow_intervention.shared.roles import SERVICE_ROLES

    parser = argparse.ArgumentParser(
        prog="yokeflow-intervention",
        description="Watch agent sessions, stop stuck ones, tell a human, resume with context.",
    )
    config_help = "configuration file (default: $YOKEFLOW_CONFIG, else ./.yokeflow.yaml)"
    parser.add_argument("--config", help=config_help)
    # `--config F` is accepted after the command too (`detect --config F EVENTS.jsonl`); there
    # its default is suppressed, so it never hides one given before the command.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    sub = parser.add_subparsers(dest="command", required=True)
    command = functools.partial(sub.add_parser, parents=[config])

    up = command("up", help="start infrastructure and every service (Ctrl-C stops all)")
    up.add_argument("--demo", action="store_true", help="also run a demo agent that gets stuck")
    up.add_argument(
        "--quiet", action="store_true", help="no line per intervention event on the terminal"
    )
    up.add_argument(
        "--detector-replicas",
        type=int,
        default=1,
        metavar="N",
        help="detector processes sharing the sessions' partitions, each standing by "
        "for the others (default 1)",
    )
    up.add_argument(
        "--notifier-replicas",
        type=int,
        default=1,
        metavar="N",
        help="notifier processes sharing the work (default 1)",
    )
    up.add_argument(
        "--pauser-replicas",
        type=int,
        default=1,
        metavar="N",
        help="pauser processes sharing the work (default 1)",
    )
    command("provision", help="create streams, consumers, KV buckets and tables; exit")
    detect = command("detect", help="replay agent events or an agent's transcript offline")
    detect.add_argument(
        "events",
        help="contract events (.jsonl), a Claude Code session file "
        "(~/.claude/projects/*/*.jsonl) or an OpenHands trajectory",
    )
    detect.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="the file's format (default: recognised from its first line)",
    )
    detect.add_argument(
        "--project", default=None, help="project id for a transcript's events (default: its cwd)"
    )
    detect.add_argument(
        "--now",
        metavar="TIME",
        help="judge silences as of TIME (RFC 3339), as if a clock line ended the "
        "file; without it only the file's own events and clock lines pass time",
    )
    publish = command("publish", help="publish a JSONL file of agent events to NATS")
    publish.add_argument("events")
    command("status", help="streams, consumers and active interventions")
    service = command("service", help="run one service in the foreground")
    service.add_argument("name", choices=SERVICE_ROLES)
    hook = command("hook", help="the agent CLIs' hooks adapter (reads the hook JSON on stdin)")
    hook.add_argument(
        "--check",
        nargs="?",
        const="",
        metavar="SESSION",
        help="tell whether this project's hooks are wired, and exit",
    )
    hook.add_argument(
        "--client", default="claude", help="claude, gemini, codex, copilot or opencode"
    )
    hook.add_argument("--env", help="a settings file (for Codex and OpenCode)")
    hook.add_argument("--event", help="the hook's event, for Copilot (its payloads omit it)")
    embedded = command("embedded-postgres", help="start, stop or restart an embedded PostgreSQL")
    embedded.add_argument("action", choices=["start", "stop", "restart"])
    embedded.add_argument("folder", help="its data folder (the one holding pgdata/)")

    for kind, what in (("agents", "a project's agents"), ("consumers", "a downstream consumer")):
        users = command(kind, help=f"credentials on the bus for {what}")
        choices = users.add_subparsers(dest="action", required=True)
        for action in ("add", "revoke"):
            choices.add_parser(action, parents=[config]).add_argument(
                "name", help="the project id" if kind == "agents" else "the consumer's name"
            )
        choices.add_parser("list", parents=[config])
        if kind == "agents":
            from yokeflow_agent.adapters import CLIENTS

            connecting = choices.add_parser(
                "connect",
                parents=[config],
                help="issue the project's agent credentials and write an agent CLI's hooks",
            )
            connecting.add_argument("name", help="the project id")
            connecting.add_argument("client", choices=CLIENTS)
            connecting.add_argument("--dir", help="the project's root (default: this folder)")
            connecting.add_argument(
                "--scope",
                choices=["project", "user"],
                default="project",
                help="project: the project's own configuration; user: the "
                "home of the user this runs as (run it as the agent's user)",
            )

    interventions = command(
        "interventions", help="list, show, acknowledge, resume, mark a false stop, watch or pause"
    )
    actions = interventions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[config])
    listing.add_argument("--project")
    listing.add_argument("--history", action="store_true")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", parents=[config])
    show.add_argument("id")
    resume = actions.add_parser("resume", parents=[config])
    resume.add_argument("id")
    resume.add_argument("--by", required=True, help="who resolved the blocker")
    resume.add_argument("--notes", default="", help="what the next session should know")
    resume.add_argument(
        "--false-stop",
        action="store_true",
        help="the session was not stuck: count this stop as a false stop",
    )
    resume.add_argument("--false-stop-note", default="", help="why the stop was false")
    marking = actions.add_parser(
        "mark-false-stop",
        parents=[config],
        help="mark a stop (resumed already, or observed) a false stop",
    )
    marking.add_argument("id")
    marking.add_argument("--by", required=True, help="who judged it a false stop")
    marking.add_argument("--note", default="", help="why the stop was false")
    ack = actions.add_parser(
        "ack", parents=[config], help="take the incident: its repeats and escalation stop"
    )
    ack.add_argument("id")
    ack.add_argument("--by", required=True, help="who is on it")
    watching = actions.add_parser(
        "watch", parents=[config], help="a line per intervention event as it happens"
    )
    watching.add_argument(
        "--colour",
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="auto: on a terminal, unless NO_COLOR is set",
    )
    pause = actions.add_parser("pause", parents=[config])
    pause.add_argument("project")
    pause.add_argument("session")
    pause.add_argument("--reason", required=True)
    pause.add_argument("--by", default="human")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hook"]:
        # An agent CLI runs this for every tool call: straight to the adapter, which reads only
        # its environment and imports nothing of the server (yokeflow_agent.adapters).
        from yokeflow_agent.adapters import main as hook

        return hook(argv[1:])
    from yokeflow_intervention.shared.settings import (
        SettingsError,
        config_file_in_use,
        load_settings,
    )

    args = build_parser().parse_args(argv)
    if args.command == "hook":  # after other options: the same adapter, which needs no settings
        from yokeflow_agent.adapters import main as hook

        given = [("--client", args.client), ("--env", args.env), ("--event", args.event)]
        flags = [word for flag, value in given if value for word in (flag, value)]
        return hook([*flags, *(["--check", args.check] if args.check is not None else [])])
    try:
        config_file = config_file_in_use(args.config)
        settings = load_settings(config_file)
    except SettingsError as exc:
        print(f"yokeflow-intervention: {exc}", file=sys.stderr)
        return 2
    from yokeflow_intervention.shared.embedded import InfrastructureError

    try:
        return _run(args, settings, config_file)
    # Says which server and why (never its credentials), or which embedded server failed.
    except (ConnectionError, InfrastructureError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings, config_file: Path | None) -> int:
    command = args.command
    if command == "detect":
        return _detect(args, settings)
    if command == "up":
        from yokeflow_agent.contract import DETECTOR_PARTITIONS

        from .up import run_up

        replicas = {
            "detector": args.detector_replicas,
            "notifier": args.notifier_replicas,
            "pauser": args.pauser_replicas,
        }
        for role, count in replicas.items():
            if count < 1:
                print(f"up: --{role}-replicas must be at least 1", file=sys.stderr)
                return 2
        if args.detector_replicas > DETECTOR_PARTITIONS:
            print(
                f"up: --detector-replicas is at most {DETECTOR_PARTITIONS}, the number of "
                "partitions (a further replica would own none)",
                file=sys.stderr,
            )
            return 2
        return run_up(settings, args.demo, replicas, config_file, args.quiet)
    if command == "embedded-postgres":
        from yokeflow_intervention.shared.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(Path(args.folder))
        {"start": server.start, "stop": server.stop, "restart": server.restart}[args.action]()
        print(f"PostgreSQL in {server.pgdata}: {args.action} done")
        return 0
    if command == "provision":
        return _provision(settings)
    if command == "service":
        return _service(args.name)
    if command in ("agents", "consumers"):
        return _credentials(args, settings)
    runners = {
        "publish": lambda: _publish(Path(args.events), settings),
        "status": lambda: _status(settings),
        "interventions": lambda: _interventions(args, settings),
    }
    return asyncio.run(runners[command]())


if __name__ == "__main__":
    sys.exit(main())
