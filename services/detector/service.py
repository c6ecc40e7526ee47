"""The detector's I/O around the pure rules: restore, publish, checkpoint.

State lives in memory for speed. It survives a crash because it is a function of the
session's events: a session the detector has no state for is rebuilt by replaying its events
from the AGENT_EVENTS stream, starting at the epoch recorded in a small checkpoint (written only
when an intervention is emitted or a session is resumed, so the hot path does no extra I/O).
An idle session leaves memory as a snapshot in its checkpoint and comes back from it.

Sessions are spread over partitions, each owned by one detector replica at a time; a replica
that loses a partition forgets its sessions, and the new owner rebuilds each from the stream on
its next event. Events the old owner had not finished are redelivered: older than what the
rebuild applied, they are answered and skipped (`SessionState.last_seq`).

A project in observe mode (`projects.<id>.detection_mode`) is judged exactly as in enforce, and
its session is stopped at most once as there, but the stop is only observed: it is published
with `mode: "observe"` (the pauser records it, pauses nothing, and so nobody is paged), the
agent is told to continue, and its fleet summary stays running. Warnings are given as in
enforce, so what observe records is what enforce would have stopped.

The watchdog's deadlines (watchdog.py) live with the partition's owner too, one small entry per
open session, and are written to the checkpoint bucket (`watch.<partition>.<project>.<session>`,
at once for a new session, else at most once a second): a new owner, or a restarted replica,
rearms them from there before it handles the partition's first message. An entry may be up to a
second behind the stream, so one read from there is checked against the session's stored events
before it stops anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from yokeflow_agent.contract import (
    AGENT_EVENTS_STREAM,
    CLOCK_NAME,
    CLOCK_TICK_TTL_S,
    DETECTOR_CHECKPOINT_BUCKET,
    DETECTOR_PARTITIONS,
    AgentEvent,
    ContractError,
    Intervention,
    InterventionResumed,
    InterventionWarned,
    SessionControl,
    SessionEnded,
    SessionStarted,
    SessionSummary,
    Subjects,
    Verdict,
    parse_agent_event,
)

from yokeflow_intervention.shared.bus import publish_event, read_last_values, read_range
from yokeflow_intervention.shared.metrics import (
    INTERVENTIONS,
    SESSIONS_EVICTED,
    SESSIONS_IN_MEMORY,
    WARNINGS,
)
from yokeflow_intervention.shared.nats_internals import sent

from .rules import DetectionConfig, SessionState, evaluate, foresee, summarise
from .sessions import SessionBook, SessionKey
from .watchdog import KeptDict, observe, waiting_text, watch_from_json, watch_json

__all__ = ["Detector"]

log = logging.getLogger(__name__)
ItemT = TypeVar("ItemT")


def _checkpoint_key(project_id: str, session_id: str) -> str:
    return f"{project_id}.{session_id}"


def _watch_key(partition: int, project_id: str, session_id: str) -> str:
    return f"watch.{partition}.{project_id}.{session_id}"


# Session summaries for the fleet view go out at most this often per session, in batches, off
# the hot path: an event only marks its session as changed.
SUMMARY_INTERVAL_S = 1.0
# Bucket writes a periodic round keeps in flight. Each takes the loop a few tens of µs to send
# (a summary's building included), and the loop runs what is ready in order: at 100,000
# sessions a round that sent its thousands of writes at once held every event behind it for a
# large part of a second.
_WRITES_IN_FLIGHT = 64
EVICTION_INTERVAL_S = 30.0  # how often idle sessions are looked for (detector_idle_evict_s)
# Changed deadlines are written at most this often (a new session's at once), and a deadline
# that only moved later is rewritten once its stored one is this close (`Detector._note`).
WATCH_WRITE_INTERVAL_S = 1.0
WATCH_REWRITE_BEFORE_S = 60.0
_CLOCK_EVENTS = f"agent.events.{CLOCK_NAME}."  # the watchdog's clock ticks, in every partition
# The verdict most events earn, as `Verdict(seq=..., decision="continue")` dumps it.
_CONTINUE = b'{"v":1,"seq":%d,"decision":"continue"}'


async def _in_flight(
    items: list[ItemT], write: Callable[[ItemT], Awaitable[object]]
) -> list[tuple[ItemT, BaseException]]:
    """`write` every item, `_WRITES_IN_FLIGHT` at a time; the items that failed, and why."""
    failed: list[tuple[ItemT, BaseException]] = []
    for start in range(0, len(items), _WRITES_IN_FLIGHT):
        batch = items[start : start + _WRITES_IN_FLIGHT]
        results = await asyncio.gather(*(write(item) for item in batch), return_exceptions=True)
        failed.extend(
            (item, result)
            for item, result in zip(batch, results, strict=True)
            if isinstance(result, BaseException)
        )
    return failed


class Detector:
    def __init__(
        self,
        config: DetectionConfig,
        nc: Client,
        checkpoints: KeyValue,
        summaries: KeyValue,
        projects: Mapping[str, DetectionConfig] | None = None,
        observing: frozenset[str] = frozenset(),
    ) -> None:
        self.book = SessionBook(config, projects=projects)
        self.observing = observing  # the projects in observe mode
        self.nc = nc
        self.js = nc.jetstream()
        self.checkpoints = checkpoints
        self.summaries = summaries
        self._changed: dict[tuple[str, str], tuple[SessionState, bool]] = {}
        # The watchdog: partitions whose stored deadlines were read since this replica got
        # them, deadlines changed since they were last written, and deadlines read from the
        # bucket that the stream has not confirmed yet (`_catch_up`).
        self._armed: set[int] = set()
        self._unwritten: dict[int, set[SessionKey]] = {}
        self._stored: dict[SessionKey, float] = KeptDict()  # the deadline each stored entry holds
        self._unconfirmed: set[SessionKey] = set()
        self._writing: dict[SessionKey, asyncio.Task[None]] = {}  # new sessions' deadlines
        # Whether this replica owns a partition now (one replica: all of them, always).
        self.owns: Callable[[int], bool] = lambda partition: True

    async def on_event(
        self, data: bytes, subject: str, stream_seq: int, stored_at: float
    ) -> asyncio.Task[None] | None:
        """One stored message of a partition (`subject` ends with it): an agent event, or a
        tick of the watchdog's clock. `stored_at` is when the stream stored it (epoch s).
        Returns what must be durable before the message is acked and has not finished yet (a
        new session's deadline, being written): the partition's next events go on meanwhile
        (`handle_durably` settles the message once it is done)."""
        published, _, index = subject.rpartition(".")
        partition = int(index)
        if partition not in self._armed:
            await self._arm(partition)
        if published.startswith(_CLOCK_EVENTS):
            await self.on_tick(partition, stored_at)
            return None
        event = parse_agent_event(data)
        expected = Subjects.agent_events(event.project_id, event.session_id)
        if published != expected:
            raise ContractError(f"published on {published} but its ids say {expected}")
        key = (event.project_id, event.session_id)
        if key in self._unconfirmed:
            await self._catch_up(partition, key, stream_seq)
        state = self.book.get(event.project_id, event.session_id)
        if state is None:
            state = await self._restore(event, stream_seq)
        elif state.intervened is not None and event.project_id not in self.observing:
            state = await self._resumed_elsewhere(state)  # an observed stop is never resumed
        state.partition = partition
        if stream_seq < state.epoch_start:
            return None  # from before the session was resumed
        if stream_seq <= state.last_seq:  # applied already (redelivered after a takeover)
            if unsent := self._answer(event, state, None, None):
                await unsent
            return None
        outcome = self.book.feed(event, stored_at, partition, stream_seq)
        state.last_seq = stream_seq
        written = None
        if self._note(partition, key, stored_at):  # a new entry: written before the ack
            written = self._write_new(partition, key)
        intervention, warning = outcome.intervention, outcome.warning
        self._changed[key] = (state, isinstance(event, SessionEnded))
        if intervention is not None:
            await self._stopped(intervention, state)
        if warning is not None:
            await publish_event(
                self.js, Subjects.warned(warning.project_id), warning, msg_id=warning.warning_id
            )
            WARNINGS.labels(warning.trigger).inc()
            log.info("warned %s/%s: %s", warning.project_id, warning.session_id, warning.reason)
        if unsent := self._answer(event, state, intervention, warning):
            await unsent
        return written

    def _write_new(self, partition: int, key: SessionKey) -> asyncio.Task[None]:
        """Write a new session's deadline now, apart from the partition's handling (a round
        trip each, which held every event behind it: at 100,000 sessions most of the p99 of a
        trigger). Its event is acked once it is written, so a replica that dies first leaves
        the event, and the session, to the next owner; a failed write is retried by the next
        round and the event redelivered."""
        writing = self._writing.get(key)
        if writing is not None:
            return writing
        marked = self._unwritten.get(partition)
        if marked is not None:
            marked.discard(key)

        async def write() -> None:
            try:
                await self._write_watch(partition, key)
            except Exception:
                self._unwritten.setdefault(partition, set()).add(key)
                raise

        writing = self._writing[key] = asyncio.create_task(write())
        writing.add_done_callback(lambda _: self._writing.pop(key, None))
        return writing

    async def _stopped(self, stop: Intervention, state: SessionState | None) -> None:
        """Publish a stop (observed, in an observe-mode project) and record it in the session's
        checkpoint (for the state in memory, or in the checkpoint as it is when the session is
        out of memory)."""
        intervention = self._in_mode(stop)
        await publish_event(
            self.js,
            Subjects.detected(intervention.project_id),
            intervention,
            msg_id=intervention.intervention_id,
        )
        if state is not None:
            await self._save_checkpoint(state, intervention.intervention_id)
        else:
            checkpoint = await self._checkpoint(intervention.project_id, intervention.session_id)
            checkpoint["intervention_id"] = intervention.intervention_id
            if "state" in checkpoint:  # evicted: its summary says stopped too
                checkpoint["state"]["intervened"] = intervention.intervention_id
                held = SessionState.from_snapshot(checkpoint["state"])
                self._changed[(held.project_id, held.session_id)] = (held, False)
            key = _checkpoint_key(intervention.project_id, intervention.session_id)
            await self.checkpoints.put(key, json.dumps(checkpoint).encode())
        INTERVENTIONS.labels(intervention.trigger).inc()
        log.info(
            "intervention %s%s: %s %s/%s: %s",
            intervention.intervention_id,
            " (observed: would have stopped)" if intervention.mode == "observe" else "",
            intervention.trigger,
            intervention.project_id,
            intervention.session_id,
            intervention.reason,
        )

    async def on_tick(self, partition: int, now: float) -> int:
        """A tick of the bus's clock in `partition`, stored at `now`: stop every session of it
        whose deadline passed (after every event stored before the tick was applied: the
        partition delivers in order). Returns how many were stopped."""
        watches = self.book.watches_of(partition)
        stopped: set[SessionKey] = set()
        for key in watches.due(now):
            if key in self._unconfirmed:  # read from the bucket: the stream may know better
                await self._catch_up(partition, key, None)
                watch = watches.get(key)
                if watch is None or watch[0] > now:
                    continue
            state = self.book.get(*key)
            intervention = self.book.stop_silent(partition, key, now)
            self._unwritten.setdefault(partition, set()).add(key)
            if state is not None:
                self._changed[key] = (state, False)
            if intervention.trigger == "waiting":  # a person is told; nothing is paused
                await publish_event(
                    self.js,
                    Subjects.waiting(intervention.project_id),
                    intervention,
                    msg_id=intervention.intervention_id,
                )
                log.info("waiting %s/%s: %s", *key, intervention.reason)
            else:
                await self._stopped(intervention, state)
            stopped.add(key)
        if stopped:  # at once: a restart must not find these deadlines still armed
            await self._write_watches(partition, stopped)
        return len(stopped)

    async def tick_clock(self, every_s: float) -> None:
        """Publish this round's tick into every partition. Every replica does, under the same
        message ids, so the stream keeps one tick a partition a round; each expires after
        CLOCK_TICK_TTL_S. Only the stream's timestamp of a tick is read, never this clock."""
        round_ = int(time.time() // every_s)
        headers = {"Nats-TTL": f"{CLOCK_TICK_TTL_S}s"}
        await asyncio.gather(
            *(
                self.js.publish(
                    Subjects.clock(partition),
                    b"",
                    headers={**headers, "Nats-Msg-Id": f"clock:{partition}:{round_}"},
                )
                for partition in range(DETECTOR_PARTITIONS)
            )
        )

    async def _arm(self, partition: int) -> None:
        """Before this replica's first message of a partition (at start, or after taking it
        over): the partition's stored deadlines, each to be confirmed by the stream."""
        if partition in self._armed:
            return
        prefix = f"$KV.{DETECTOR_CHECKPOINT_BUCKET}."
        found = await read_last_values(
            self.nc,
            f"KV_{DETECTOR_CHECKPOINT_BUCKET}",
            f"{prefix}{_watch_key(partition, '*', '*')}",
        )
        watches = self.book.watches_of(partition)
        for subject, value in found:
            _, _, project_id, session_id = subject[len(prefix) :].split(".")
            key = (project_id, session_id)
            if watches.get(key) is None:
                watch = watch_from_json(value)
                watches.set(key, watch)
                self._stored[key] = watch[0]
                self._unconfirmed.add(key)
        self._armed.add(partition)
        if found:
            log.info("partition %d: %d open sessions' deadlines rearmed", partition, len(found))

    async def _catch_up(self, partition: int, key: SessionKey, end: int | None) -> None:
        """Bring a deadline read from the bucket up to the stream: apply the session's events
        it had not seen (those before stream sequence `end`; all of them with None), each at
        the time the stream stored it. Read from the stream's leader, which is never behind."""
        self._unconfirmed.discard(key)
        watches = self.book.watches_of(partition)
        watch = watches.get(key)
        if watch is None:
            return
        subject = Subjects.agent_events_stored(*key)
        cursor = watch[3] + 1
        while end is None or cursor < end:
            try:
                msg = await self.js.get_msg(AGENT_EVENTS_STREAM.name, cursor, subject, next=True)
            except NotFoundError:
                break
            if msg.seq is None or (end is not None and msg.seq >= end):
                break
            cursor = msg.seq + 1
            try:
                event = parse_agent_event(msg.data or b"")
            except ContractError:
                continue
            stored = msg.time.timestamp() if msg.time else time.time()
            watch = observe(watch, event, stored, msg.seq, self.book.config.watchdog)
            if watch is None:
                break
        watches.set(key, watch)
        self._unwritten.setdefault(partition, set()).add(key)

    def _note(self, partition: int, key: SessionKey, now: float) -> bool:
        """Whether the session's stored entry needs writing, and so marked: a new one (True:
        write it at once), a removed one, or one whose deadline came earlier or is close
        (stored, it would stop the session late, or leave a long catch-up to a new owner).
        A deadline that only moved later is left stored until then: the catch-up before any
        stop corrects it, so a busy session costs a write every few minutes, not every second."""
        watch = self.book.watches_of(partition).get(key)
        stored = self._stored.get(key)
        if watch is None and stored is None:
            return False
        if (
            watch is None
            or stored is None
            or watch[0] < stored
            or stored - now < WATCH_REWRITE_BEFORE_S
        ):
            self._unwritten.setdefault(partition, set()).add(key)
        return stored is None and watch is not None

    async def write_watches(self) -> int:
        """Write the deadlines that changed in the partitions this replica owns; returns how
        many. A failed write is retried with the next round."""
        written = 0
        for partition in list(self._unwritten):
            if self.owns(partition):
                written += await self._write_watches(partition)
            else:
                self._unwritten.pop(partition, None)
        return written

    async def _write_watch(self, partition: int, key: SessionKey) -> None:
        """Store the session's deadline as it is now, or remove it when there is none."""
        watch = self.book.watches_of(partition).get(key)
        name = _watch_key(partition, *key)
        if watch is None:
            await self.checkpoints.purge(name)
            self._stored.pop(key, None)
        else:
            await self.checkpoints.put(name, watch_json(watch))
            self._stored[key] = watch[0]

    async def _write_watches(self, partition: int, only: set[SessionKey] | None = None) -> int:
        """Write the partition's marked entries (or only those of `only`)."""
        marked = self._unwritten.pop(partition, set())
        keys = marked if only is None else marked & only
        if only is not None and marked - only:
            self._unwritten[partition] = marked - only
        failed = await _in_flight(list(keys), partial(self._write_watch, partition))
        if failed:
            log.warning("%d deadlines not written, retried: %r", len(failed), failed[0][1])
            self._unwritten.setdefault(partition, set()).update(key for key, _ in failed)
        return len(keys) - len(failed)

    def _answer(
        self,
        event: AgentEvent,
        state: SessionState,
        intervention: Intervention | None,
        warning: InterventionWarned | None,
    ) -> Awaitable[None] | None:
        """Tell the agent at once what its event earned (it may be waiting before a call runs).
        Only after what it announces is durable: a stop is published, a warning too. An ended
        session is told nothing: nobody waits for it. Sent as it is called (no coroutine on the
        hot path); what is returned, when the connection could not take it at once, must be
        awaited."""
        if isinstance(event, SessionEnded):
            return None
        subject = Subjects.verdicts(event.project_id, event.session_id)
        control: SessionControl | None = None
        enforced = event.project_id not in self.observing  # observe: it runs on, stop or not
        if intervention is not None and enforced:
            control = SessionControl.paused_by(intervention, intervention.detected_at)
        elif state.intervened is not None and enforced:  # the pause may not be visible yet
            control = SessionControl(
                state="paused",
                intervention_id=state.intervened,
                reason=f"paused by intervention {state.intervened}",
            )
        verdict: Verdict | None = None
        if control is not None:
            verdict = Verdict(seq=event.seq, decision="stop", control=control)
        elif warning is not None:
            verdict = Verdict(
                seq=event.seq,
                decision="warn",
                warning=f"YokeFlow: {warning.reason}. {warning.advice}",
            )
        answer = (  # most events: the answer without building and dumping a model
            _CONTINUE % event.seq
            if verdict is None
            else verdict.model_dump_json(exclude_none=True).encode()
        )
        return None if sent(self.nc, subject, answer) else self.nc.publish(subject, answer)

    def _in_mode(self, intervention: Intervention) -> Intervention:
        """The stop as its project's mode makes it: observed in an observe-mode project."""
        if intervention.project_id not in self.observing:
            return intervention
        return intervention.model_copy(update={"mode": "observe"})

    def forget(self, subject: str) -> None:
        """Drop a session's memory after a failed step; the next delivery rebuilds it. The ids
        come from the subject, so a message that cannot be parsed cannot break this either."""
        tokens = subject.split(".")
        if len(tokens) == 5:
            self.book.drop(tokens[2], tokens[3])

    def forget_partition(self, partition: int) -> None:
        """Another replica owns the partition now: its sessions are rebuilt there."""
        dropped = self.book.drop_if(lambda state: state.partition == partition)
        held = list(self.book.watches.pop(partition, None) or ())
        self._unconfirmed.difference_update(held)
        for key in held:
            self._stored.pop(key, None)
        self._armed.discard(partition)
        self._unwritten.pop(partition, None)
        SESSIONS_IN_MEMORY.set(len(self.book))
        log.info("partition %d handed over: %d sessions forgotten here", partition, dropped)

    async def on_resumed(self, resumed: InterventionResumed) -> None:
        """A human (or recovery) resumed the session: start a fresh epoch of its state. Any
        replica may hear it: the checkpoint tells the partition's owner, whose memory of the
        stopped session gives way to it on the session's next event (`_resumed_elsewhere`)."""
        key = (resumed.project_id, resumed.session_id)
        subject = Subjects.agent_events_stored(*key)
        try:
            last = await self.js.get_last_msg(AGENT_EVENTS_STREAM.name, subject)
            epoch_start = (last.seq or 0) + 1
        except NotFoundError:
            epoch_start = 1
        held, config = self.book.get(*key), self.book.config_for(resumed.project_id)
        state = self.book.start_epoch(*key) if held is not None else SessionState.new(*key, config)
        state.epoch_start = epoch_start
        await self._save_checkpoint(state, None)
        # No summary until the session's next event: a resumed session usually ended at its
        # pause and goes on as a new one (its summary says ended); shown as running with no
        # event, it would stay on the fleet view for good.

    async def _resumed_elsewhere(self, state: SessionState) -> SessionState:
        """A stopped session's memory, or a fresh epoch if another replica heard its resume."""
        checkpoint = await self._checkpoint(state.project_id, state.session_id)
        epoch_start = int(checkpoint.get("epoch_start", 1))
        if epoch_start <= state.epoch_start:
            return state
        fresh = self.book.start_epoch(state.project_id, state.session_id)
        fresh.epoch_start = epoch_start
        return fresh

    async def publish_summaries(self) -> int:
        """Put the summary of every session that changed since the last round (the fleet view
        reads them); returns how many. A failed put is logged and retried with the session's
        next change: a summary is a view, never a decision."""
        if not self._changed:
            return 0
        changed, self._changed = self._changed, {}

        async def put(item: tuple[SessionKey, tuple[SessionState, bool]]) -> None:
            (key, (state, ended)) = item
            summary = self._summary(state, ended).model_dump_json().encode()
            await self.summaries.put(_checkpoint_key(*key), summary)

        failed = await _in_flight(list(changed.items()), put)
        if failed:
            log.warning("%d session summaries not published: %r", len(failed), failed[0][1])
        return len(changed)

    def _summary(self, state: SessionState, ended: bool) -> SessionSummary:
        """The rules' summary of the session, and what it waits for a person for, if it does."""
        summary = summarise(state, self.book.config_for(state.project_id), ended)
        if summary.state == "stopped" and state.project_id in self.observing:
            summary = summary.model_copy(update={"state": "running"})  # it would have stopped
        if ended or state.partition is None:
            return summary
        key = (state.project_id, state.session_id)
        waiting = waiting_text(self.book.watches_of(state.partition).get(key))
        return summary.model_copy(update={"waiting": waiting}) if waiting else summary

    async def _save_checkpoint(
        self, state: SessionState, intervention_id: str | None, snapshot: bool = False
    ) -> None:
        """The session's epoch and intervention; with `snapshot`, its whole state too (when it
        leaves memory). Any other write replaces a snapshot: a snapshot is valid only while the
        session is out of memory, so a crash never restores a state older than its events."""
        checkpoint: dict[str, object] = {
            "epoch_start": state.epoch_start,
            "intervention_id": intervention_id,
        }
        if snapshot:
            checkpoint["state"] = state.snapshot()
        await self.checkpoints.put(
            _checkpoint_key(state.project_id, state.session_id), json.dumps(checkpoint).encode()
        )

    async def evict_idle(self, idle_s: float) -> int:
        """Move every session idle for `idle_s` seconds from memory to its checkpoint (a
        snapshot of its state, restored exactly by its next event, with no replay). Returns how
        many left memory."""
        evicted = 0
        for state in self.book.idle(time.monotonic() - idle_s):
            if state.partition is not None and not self.owns(state.partition):
                self.book.drop(state.project_id, state.session_id)  # its new owner rebuilds it
                continue
            events = state.events
            try:
                await self._save_checkpoint(state, state.intervened, snapshot=True)
            except Exception as exc:  # too large, NATS away: it stays in memory for now
                log.warning(
                    "session %s/%s not evicted: %r", state.project_id, state.session_id, exc
                )
                continue
            if state.events != events:  # an event came in meanwhile: keep it, drop the snapshot
                await self._save_checkpoint(state, state.intervened)
                continue
            self.book.drop(state.project_id, state.session_id)
            self._changed.pop((state.project_id, state.session_id), None)
            evicted += 1
        SESSIONS_EVICTED.inc(evicted)
        SESSIONS_IN_MEMORY.set(len(self.book))
        if evicted:
            log.info("evicted %d idle sessions; %d in memory", evicted, len(self.book))
        return evicted

    async def _checkpoint(self, project_id: str, session_id: str) -> dict[str, Any]:
        try:
            entry = await self.checkpoints.get(_checkpoint_key(project_id, session_id))
        except KeyNotFoundError:
            return {}
        found: dict[str, Any] = json.loads(entry.value or b"{}")
        return found

    async def _restore(self, event: AgentEvent, stream_seq: int) -> SessionState:
        if isinstance(event, SessionStarted):  # nothing can precede a session's start
            return self.book.start_epoch(event.project_id, event.session_id)
        checkpoint = await self._checkpoint(event.project_id, event.session_id)
        if "state" in checkpoint:
            # Evicted while idle: its state, exactly as it left memory. The snapshot is spent
            # at once (a crash later must replay, not go back to it). Events it lacks (written
            # by a replica as it lost the partition) are replayed onto it.
            state = self.book.adopt(SessionState.from_snapshot(checkpoint["state"]))
            await self._save_checkpoint(state, state.intervened)
            if state.last_seq:
                start = max(state.last_seq + 1, state.epoch_start)
                await self._replay(state, event, start, stream_seq, state.intervened)
            return state
        state = self.book.start_epoch(event.project_id, event.session_id)
        state.epoch_start = int(checkpoint.get("epoch_start", 1))
        await self._replay(
            state, event, state.epoch_start, stream_seq, checkpoint.get("intervention_id")
        )
        return state

    async def _replay(
        self,
        state: SessionState,
        event: AgentEvent,
        start: int,
        end: int,
        intervention_id: str | None,
    ) -> None:
        """Apply the session's events with stream sequence in [start, end) to `state`."""
        replayed = 0
        verdict: Intervention | None = None
        config = self.book.config_for(event.project_id)
        for earlier in await self._history(event, start, end):
            found = evaluate(state, earlier, config)
            if found is None:
                foresee(state, earlier, config)  # what it was warned of, warned once
            verdict = (self._in_mode(found) if found is not None else None) or verdict
            replayed += 1
        if intervention_id:
            state.intervened = intervention_id
        elif verdict is not None:
            # The replay says an earlier event stopped the session, but no checkpoint says its
            # intervention went out (a failover between the publish and the checkpoint, or the
            # event was dead-lettered). A session is handled only once its intervention is
            # published, so publish it now: under its own id, a repeat is dropped by the stream.
            await publish_event(
                self.js,
                Subjects.detected(verdict.project_id),
                verdict,
                msg_id=verdict.intervention_id,
            )
            await self._save_checkpoint(state, verdict.intervention_id)
        if replayed:
            log.info(
                "restored %s/%s from %d earlier events",
                event.project_id,
                event.session_id,
                replayed,
            )

    async def _history(self, event: AgentEvent, start: int, end: int) -> list[AgentEvent]:
        """The session's events with stream sequence in [start, end), by batched direct gets:
        no consumer per restore, so restoring thousands of sessions (a restart, a takeover)
        costs a request each."""
        subject = Subjects.agent_events_stored(event.project_id, event.session_id)
        events: list[AgentEvent] = []
        for data in await read_range(self.nc, AGENT_EVENTS_STREAM.name, subject, start, end):
            try:
                events.append(parse_agent_event(data))
            except ContractError:
                pass  # it went to the dead-letter subject the first time
        return events
