"""Recovery plans stay inside what the operator registered (pure planning, no processes)."""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from yokeflow_agent.contract import Intervention

from yokeflow_intervention.services.pauser.briefs import quoted
from yokeflow_intervention.services.recovery.actions import NoAction, Refused, plan_recovery
from yokeflow_intervention.shared.confine import scrubbed_environment
from yokeflow_intervention.shared.settings import ProjectRegistration, Settings


def stuck(
    blocker: str, error: str, workspace: str | None = None, project: str = "shop"
) -> Intervention:
    return Intervention(
        intervention_id="i-1",
        project_id=project,
        session_id="s-1",
        trigger="critical_error",
        blocker_type=blocker,
        reason="stuck",
        error_excerpt=error,
        detected_at=datetime.now(UTC),
        workspace=workspace,
    )


def settings_for(root: Path, **fields: object) -> Settings:
    registration = {"workspace_root": root, "user": getpass.getuser()} | fields
    return Settings(projects={"shop": ProjectRegistration(**registration)})  # type: ignore[arg-type]


def test_an_unregistered_project_gets_no_recovery(tmp_path):
    with pytest.raises(Refused, match="not registered"):
        plan_recovery(
            stuck("port_conflict", "EADDRINUSE :::3000", project="other"),
            settings_for(tmp_path, recovery_actions=["free_port"], dev_ports=[3000]),
        )
    with pytest.raises(Refused, match="not among the project's allowed"):
        plan_recovery(stuck("port_conflict", "EADDRINUSE :::3000"), settings_for(tmp_path))
    with pytest.raises(NoAction):
        plan_recovery(stuck("prisma_schema_error", "P1012"), settings_for(tmp_path))


def test_a_workspace_must_resolve_inside_the_registered_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)  # a link planted inside the root does not count
    settings = settings_for(root, recovery_actions=["install_module"], python="/usr/bin/python3")
    for claimed in (str(outside), str(root / "link"), str(root / ".." / "outside")):
        with pytest.raises(Refused, match="outside the registered workspace root"):
            plan_recovery(stuck("module_not_found", "No module named 'x'", claimed), settings)


def test_npm_uses_the_configured_registry_runs_no_scripts_and_inherits_no_secrets(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("npm_config_registry", "http://evil.example")
    monkeypatch.setenv("API_TOKEN", "secret")
    (tmp_path / ".npmrc").write_text("registry=http://evil.example\n")
    settings = settings_for(tmp_path, recovery_actions=["install_module"])
    if not __import__("shutil").which("npm"):
        pytest.skip("npm is not installed")
    plan = plan_recovery(stuck("module_not_found", "Error: Cannot find module 'lodash'"), settings)
    assert "--registry=https://registry.npmjs.org/" in plan.command
    assert "--ignore-scripts" in plan.command
    assert plan.cwd == os.path.realpath(tmp_path) and plan.user == getpass.getuser()
    assert not {k for k in plan.env if k.lower().startswith("npm_") or k == "API_TOKEN"}


def test_npm_gives_every_scope_the_workspace_names_the_operators_registry(tmp_path):
    if not __import__("shutil").which("npm"):
        pytest.skip("npm is not installed")
    settings = settings_for(tmp_path, recovery_actions=["install_module"])
    error = "Error: Cannot find module '@c/x'"
    npmrc = tmp_path / ".npmrc"
    npmrc.write_text("@a:registry=http://evil.example\n '@b:registry' = http://evil.example\n")
    command = plan_recovery(stuck("module_not_found", error), settings).command
    registry = "https://registry.npmjs.org/"
    assert {f"--@{s}:registry={registry}" for s in "abc"} <= set(command)
    assert "--userconfig=/dev/null" in command and f"--prefix={tmp_path}" in command
    npmrc.write_text("${SCOPE}:registry=http://evil.example\n")  # npm expands it; we cannot
    with pytest.raises(Refused, match="names a registry"):
        plan_recovery(stuck("module_not_found", error), settings)
    npmrc.unlink()
    npmrc.symlink_to(tmp_path / "elsewhere")  # npm would read what it leads to
    with pytest.raises(Refused, match="cannot be read as a plain file"):
        plan_recovery(stuck("module_not_found", error), settings)


def test_pip_runs_only_the_registered_interpreter_isolated(tmp_path):
    python = "/usr/bin/python3"  # the operator's: nobody else can change it or its folders
    settings = settings_for(
        tmp_path, user="nobody", recovery_actions=["install_module"], python=python
    )
    plan = plan_recovery(stuck("module_not_found", "No module named 'requests'"), settings)
    assert plan.command[:5] == [python, "-I", "-m", "pip", "install"]
    assert plan.env["PIP_CONFIG_FILE"] == os.devnull  # no pip.conf, the venv's own included
    no_python = settings_for(tmp_path, recovery_actions=["install_module"])
    with pytest.raises(Refused, match="no interpreter is registered"):
        plan_recovery(stuck("module_not_found", "No module named 'requests'"), no_python)


def test_an_interpreter_the_projects_user_can_change_is_refused(tmp_path):
    """An interpreter in a folder the agent's user can write (its workspace's venv, a shared
    writable folder) could be swapped for one that passes recovery's check."""
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to("/usr/bin/python3")
    tmp_path.chmod(0o777)  # writable by anyone, so by the project's user too
    try:
        settings = settings_for(
            tmp_path, user="nobody", recovery_actions=["install_module"], python=str(python)
        )
        with pytest.raises(Refused, match=f"can be changed by the project's user \\({tmp_path}\\)"):
            plan_recovery(stuck("module_not_found", "No module named 'requests'"), settings)
    finally:
        tmp_path.chmod(0o700)


def test_workspace_actions_need_the_projects_user(tmp_path):
    settings = Settings(
        projects={
            "shop": ProjectRegistration(
                workspace_root=tmp_path,
                recovery_actions=["install_module"],
                python="/usr/bin/python3",
            )
        }
    )
    with pytest.raises(Refused, match="register the project's user"):
        plan_recovery(stuck("module_not_found", "No module named 'x'"), settings)


def test_ports_and_redis_ports_are_the_projects_own(tmp_path):
    settings = settings_for(
        tmp_path,
        recovery_actions=["free_port", "start_redis"],
        dev_ports=[5173],
        redis_ports=[6380],
    )
    assert (
        plan_recovery(stuck("port_conflict", "EADDRINUSE :::5173"), settings).params["port"] == 5173
    )
    with pytest.raises(Refused, match="registered dev ports"):
        plan_recovery(stuck("port_conflict", "EADDRINUSE :::8765"), settings)
    with pytest.raises(Refused, match="registered Redis ports"):
        plan_recovery(stuck("redis_unavailable", "ECONNREFUSED 127.0.0.1:6379"), settings)


def test_the_scrubbed_environment_carries_no_service_secret(monkeypatch):
    for name in ("API_TOKEN", "DATABASE_URL", "NATS_URL", "TWILIO_AUTH_TOKEN", "SMTP_PASSWORD"):
        monkeypatch.setenv(name, "secret")
    env = scrubbed_environment(None, EXTRA="1")
    assert "secret" not in env.values() and env["EXTRA"] == "1" and "PATH" in env


def test_quoted_text_cannot_close_its_fence():
    text = "a\n```\n## Forged\n````"
    lines = quoted(text)
    assert lines[0] == "`````text" and lines[-1] == "`````"
