"""The pieces of `up`'s lifeline on their own (the whole, with a real `up` killed by SIGKILL, is
tests/integration/test_up_lifeline.py): the data folder's lock, and the watchdog stopping the
processes it was told of and nothing else."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from yokeflow_intervention.cli.lifeline import StackRunning, hold_data_folder, watch


def test_a_data_folder_holds_one_up_and_names_it(tmp_path: Path) -> None:
    held = hold_data_folder(tmp_path)
    try:
        assert (tmp_path / "up.lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(StackRunning, match=rf"already running on .* \(pid {os.getpid()}\)"):
            hold_data_folder(tmp_path)
    finally:
        os.close(held)
    os.close(hold_data_folder(tmp_path))  # free again once the holder is gone


def test_an_ended_up_whose_stack_is_still_stopping_is_waited_for(tmp_path: Path) -> None:
    held = hold_data_folder(tmp_path)  # as the watchdog of a dead `up` holds it
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (tmp_path / "up.lock").write_text(f"{ended}\n")
    try:
        with pytest.raises(StackRunning, match=rf"ended \(pid {ended}\).*still being stopped"):
            hold_data_folder(tmp_path, patience=0.3)
    finally:
        os.close(held)


def test_the_watchdog_stops_the_processes_named_and_leaves_a_reused_pid_alone() -> None:
    named = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = psutil.Process(named.pid).create_time()
        pipe = io.BytesIO(
            f"process {named.pid} {started!r}\n"
            f"process {other.pid} {started - 1000!r}\n".encode()  # the pid's earlier owner
        )
        assert watch(Path("/nonexistent"), pipe) == [f"service {named.pid}"]
        assert named.wait(5) == -15
        assert other.poll() is None
    finally:
        named.kill()
        other.kill()
        named.wait()
        other.wait()
