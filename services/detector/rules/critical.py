"""Critical infrastructure errors: a blocker the agent cannot fix from inside its session (a
database down, a port taken) stops it at once, with the blocker type recovery acts on."""

from __future__ import annotations

import re

from .config import DetectionConfig
from .fingerprints import excerpt, failure_fingerprint, first_line
from .state import SessionState, Verdict

# The module a "not found" error names: Node's `Cannot find module 'x'`, webpack's `Module not
# found: Error: Can't resolve 'x'`, Python's `No module named 'x'`.
_MISSING_MODULE = re.compile(
    r"""(?:Cannot find module|Can't resolve|No module named)\s+['"`]([^'"`]+)['"`]"""
)


def _names_only_local_files(text: str) -> bool:
    """True when every module the error names is a relative or absolute path (`./auth`).

    Such a module is one of the project's own files, not a package: the agent writing an import
    before the file, or mistyping a path, is ordinary work it fixes itself, and no install can
    provide it. Only a missing package is an infrastructure blocker.
    """
    names = _MISSING_MODULE.findall(text)
    return bool(names) and all(name.startswith((".", "/")) for name in names)


def classify_critical(text: str, config: DetectionConfig) -> str | None:
    for blocker, patterns in config.critical_patterns:
        if any(p.search(text) for p in patterns):
            if blocker == "module_not_found" and _names_only_local_files(text):
                continue
            return blocker
    return None


def critical(state: SessionState, text: str, config: DetectionConfig) -> Verdict | None:
    """A failure or error event's text naming a blocker."""
    if not config.detect_infrastructure_errors:
        return None
    blocker = classify_critical(text, config)
    if blocker is None:
        return None
    if blocker == "missing_dependency":
        # A typo is not a blocker: the same command must be missing again.
        key = failure_fingerprint(excerpt(text))
        state.missing[key] = state.missing.get(key, 0) + 1
        if state.missing[key] < config.missing_dependency_repeats:
            return None
    return Verdict(
        trigger="critical_error",
        reason=f"Critical infrastructure error ({blocker}): {first_line(text)}",
        excerpt=excerpt(text),
        blocker_type=blocker,
    )
