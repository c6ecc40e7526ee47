"""docs/architecture.md stays true: it names every `shared/` module, every table and view the
migrations create and every subject of the contract, and its table of owners is the one
`shared/owners.py` enforces (as httpx's tests/test_exported_members.py keeps `__all__` true)."""

from __future__ import annotations

import re
from pathlib import Path

from yokeflow_agent.contract import Subjects

from yokeflow_intervention.shared.owners import OPERATOR_TABLES, OWNERS, VIEWS

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()
_CREATED = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)",
    re.IGNORECASE,
)


def created_relations() -> set[str]:
    """Every table and view the migrations create (and the runner's own ledger)."""
    found = {"schema_migrations"}
    for migration in (ROOT / "shared" / "migrations").glob("*.sql"):
        found |= {name.lower() for name in _CREATED.findall(migration.read_text())}
    return found


def subject_families() -> set[str]:
    """Each subject constant of the contract without its wildcard tail: `agent.events.>` is
    `agent.events`, `intervention.cmd` itself."""
    constants = [v for k, v in vars(Subjects).items() if k.isupper() and isinstance(v, str)]
    return {re.sub(r"(\.[*>])+$", "", subject) for subject in constants}


def test_every_shared_module_is_named():
    modules = sorted(p.name for p in (ROOT / "shared").glob("*.py") if p.name != "__init__.py")
    assert modules
    assert [m for m in modules if f"`shared/{m}`" not in DOC] == []


def test_every_table_is_named():
    relations = created_relations()
    assert {"projects", "paused_sessions", "active_interventions"} <= relations
    assert sorted(r for r in relations if f"`{r}`" not in DOC) == []


def test_every_subject_is_named():
    families = subject_families()
    assert {"agent.events", "intervention.paused", "intervention.cmd"} <= families
    assert sorted(f for f in families if f"`{f}" not in DOC) == []


def test_every_table_has_an_owner_and_the_doc_says_which():
    assert created_relations() == {*OWNERS, *VIEWS, *OPERATOR_TABLES}
    documented = {}
    for line in DOC.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) == 4 and (table := re.fullmatch(r"`(\w+)`( \(view\))?", cells[0])):
            documented[table[1]] = (cells[1], cells[2], cells[3])
    for table, ownership in OWNERS.items():
        owner, writers, readers = documented[table]
        assert owner == ownership.owner, table
        named = re.findall(r"(\w+) \(([A-Z, ]+)\)", writers)
        assert {w: tuple(p.split(", ")) for w, p in named} == dict(ownership.writers), table
        assert tuple(r for r in readers.split(", ") if r) == ownership.readers, table
    for view, readers in VIEWS.items():
        assert tuple(documented[view][2].split(", ")) == readers, view
    for table in OPERATOR_TABLES:
        assert "operator" in documented[table][0], table
