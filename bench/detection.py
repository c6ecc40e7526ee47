"""How the detector's verdicts compare with real sessions' (not a test): the corpus under
tests/corpus/ replayed through exactly the code `yokeflow-intervention detect` runs.

Prints, per class, per kind of source and per agent: sessions, agree, false stops (healthy
sessions stopped), misses (stuck sessions never stopped) and early stops (stuck sessions stopped
before their stuck part began: the right verdict for the wrong reason); then every disagreement
with the reason the detector gave. Exits non-zero only on a usage error: the figures are for
reading, tests/unit/test_corpus.py holds the assertions.

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

    healthy = [j for j in judgements if j.entry["verdict"] == "healthy"]
    stuck = [j for j in judgements if j.entry["verdict"] == "stuck"]
    agree = sum(j.outcome == "agree" for j in judgements)
    false_stops = sum(j.outcome == "false_stop" for j in healthy)
    misses = sum(j.outcome == "miss" for j in stuck)
    early = sum(j.outcome == "early" for j in stuck)
    print(
        f"{agree} of {len(judgements)} agree; {false_stops} of {len(healthy)} healthy sessions "
        f"stopped; {misses} of {len(stuck)} stuck sessions never stopped; {early} stopped early\n"
    )
    for title, key in (("class", "class"), ("source", "kind"), ("agent", "agent")):
        print(table(title, judgements, key), end="\n\n")
    disagreements = [j for j in judgements if j.outcome != "agree"]
    print(f"disagreements ({len(disagreements)}):")
    for judgement in disagreements:
        print("  " + judgement.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
