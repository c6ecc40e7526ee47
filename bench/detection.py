"""How the detector's verdicts compare with real sessions' (not a test): the corpus under
tests/corpus/ replayed through exactly the code `yokeflow-intervention detect` runs.

Prints, for the whole corpus and then for the tuning set (the sessions the rules were developed
against) and the held-out set (collected afterwards, verdicts written before replay) apart, per
class, per kind of source and per agent: sessions, agree, false stops (healthy sessions stopped),
misses (stuck sessions never stopped) and early stops (stuck sessions stopped before their stuck
part began: the right verdict for the wrong reason); then every disagreement with the reason the
detector gave. Only the held-out figures say how the rules do on sessions they were not fitted
to. Exits non-zero only on a usage error: the figures are for reading, tests/unit/test_corpus.py
holds the assertions.

Usage: python bench/detection.py [--config FILE] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.corpus.judge import CORPUS, Judgement, judge_corpus, tally  # noqa: E402
from yokeflow_intervention.services.detector.rules import DetectionConfig  # noqa: E402
from yokeflow_intervention.shared.settings import SettingsError, load_settings  # noqa: E402

COLUMNS = ("sessions", "agree", "false_stop", "miss", "early")


def table(title: str, judgements: list[Judgement], key: str) -> str:
    rows = tally(judgements, key)
    width = max(len(title), *(len(name) for name in rows))
    lines = [f"{title:<{width}}  " + "  ".join(f"{c:>10}" for c in COLUMNS)]
    for name, counts in rows.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{counts[c]:>10}" for c in COLUMNS))
    return "\n".join(lines)


def summary(judgements: list[Judgement]) -> str:
    healthy = [j for j in judgements if j.entry["verdict"] == "healthy"]
    stuck = [j for j in judgements if j.entry["verdict"] == "stuck"]
    agree = sum(j.outcome == "agree" for j in judgements)
    false_stops = sum(j.outcome == "false_stop" for j in healthy)
    misses = sum(j.outcome == "miss" for j in stuck)
    early = sum(j.outcome == "early" for j in stuck)
    return (
        f"{agree} of {len(judgements)} agree; {false_stops} of {len(healthy)} healthy sessions "
        f"stopped; {misses} of {len(stuck)} stuck sessions never stopped; {early} stopped early"
    )


def report(title: str, judgements: list[Judgement]) -> str:
    """One set's figures: the summary line, the tables and its disagreements."""
    parts = [f"== {title}: {summary(judgements)}\n"]
    for heading, key in (("class", "class"), ("source", "kind"), ("agent", "agent")):
        parts.append(table(heading, judgements, key) + "\n")
    disagreements = [j for j in judgements if j.outcome != "agree"]
    parts.append(f"disagreements ({len(disagreements)}):")
    parts.extend("  " + j.describe() for j in disagreements)
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="configuration file, as for `detect`")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="corpus folder")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.json").is_file():
        print(f"detection: {args.corpus}: no manifest.json", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config)
    except (SettingsError, OSError) as exc:
        print(f"detection: {exc}", file=sys.stderr)
        return 2
    judgements = judge_corpus(DetectionConfig.from_settings(settings), args.corpus)
    print(report("all sessions", judgements))
    for name in ("tuning", "heldout"):
        chosen = [j for j in judgements if j.entry.get("set", "tuning") == name]
        if chosen:
            print(report(f"{name} set", chosen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
