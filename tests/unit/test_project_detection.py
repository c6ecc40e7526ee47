"""Per-project detection settings: how they are read, checked and applied (no servers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from yokeflow_intervention.services.detector.rules import DetectionConfig
from yokeflow_intervention.services.detector.sessions import SessionBook, project_configs, replay
from yokeflow_intervention.shared.settings import (
    DETECTION_KEYS,
    Settings,
    SettingsError,
    load_settings,
)

from .test_rules import Agent, feed

CONFIG = """
intervention:
  max_retries: 3
  projects:
    trial:
      workspace_root: /srv/trial
      detection_mode: observe
      detection:
        max_retries: 6
        session_duration_limit: 3600
    shop:
      workspace_root: /srv/shop
"""


def test_a_project_is_judged_by_its_own_keys_and_the_global_ones_otherwise(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    settings = load_settings(path, {})
    trial = settings.detection_settings("trial")
    assert (trial.max_retries, trial.session_duration_limit) == (6, 3600)
    assert trial.error_rate_threshold == settings.error_rate_threshold  # not overridden
    assert settings.detection_settings("shop") is settings  # nothing of its own: no copy
    assert settings.detection_settings("unregistered") is settings
    assert settings.detection_mode("trial") == "observe"
    assert settings.detection_mode("shop") == settings.detection_mode("other") == "enforce"


@pytest.mark.parametrize(
    ("detection", "message"),
    [
        ("{max_retrys: 5}", r"intervention\.projects\.trial\.detection\.max_retrys: unknown key"),
        ("{max_retries: 0}", r"detection\.max_retries: Input should be greater than or equal to 1"),
        ("{error_rate_threshold: 2}", r"detection\.error_rate_threshold: .*less than or equal"),
        ("{critical_patterns: {Port: [x]}}", r"detection\.critical_patterns: .*snake_case"),
        ("{critical_patterns: {port: ['a(']}}", r"bad regular expression"),
        ("{nats_url: 'nats://x'}", r"detection\.nats_url: unknown key"),  # not a detection key
    ],
)
def test_a_bad_override_names_its_project_and_key(tmp_path: Path, detection: str, message: str):
    path = tmp_path / "config.yaml"
    path.write_text(
        "intervention:\n  projects:\n    trial:\n      workspace_root: /srv/trial\n"
        f"      detection: {detection}\n"
    )
    with pytest.raises(SettingsError, match=message):
        load_settings(path, {})


def test_a_mode_other_than_enforce_or_observe_is_refused():
    with pytest.raises(SettingsError, match=r"YOKEFLOW_PROJECTS\.trial\.detection_mode: Input"):
        environment = {"YOKEFLOW_PROJECTS": "{trial: {workspace_root: /w, detection_mode: x}}"}
        load_settings(None, environment)


def test_every_settings_key_the_rules_read_may_be_overridden_per_project():
    """A new rule key in Settings and DetectionConfig must be listed in DETECTION_KEYS too."""
    read_by_rules = {f.name for f in dataclasses.fields(DetectionConfig)} & set(
        Settings.model_fields
    )
    assert read_by_rules <= set(DETECTION_KEYS)
    assert set(DETECTION_KEYS) <= set(Settings.model_fields)


def test_detect_and_the_service_judge_each_project_by_its_config():
    lenient_keys = {"max_retries": 6, "loop_repeat_threshold": 10, "max_retries_rotating": 10}
    settings = Settings(
        projects={
            "lenient": {"workspace_root": "/w", "detection": lenient_keys},
            "registered": {"workspace_root": "/w", "detection_mode": "observe"},
        }
    )
    projects = project_configs(settings)
    assert list(projects) == ["lenient"]  # a project with no keys of its own has no config
    strict, lenient = Agent("s1", "strict"), Agent("s2", "lenient")
    events = [strict.start(), lenient.start()]
    for _ in range(5):
        events += strict.run("npm start", ok=False, error="boom")
        events += lenient.run("npm start", ok=False, error="boom")
    found = list(replay(events, DetectionConfig.from_settings(settings), projects))
    assert [(i.project_id, i.trigger) for i in found] == [("strict", "retry_limit")]
    book = SessionBook(DetectionConfig.from_settings(settings), projects=projects)
    assert feed(book, events) == found  # the service's book: the same verdicts
