"""YokeFlow Intervention: the server side (detector, pauser, notifier, recovery, API, CLI).

One import package, so that an installed copy claims no generic top-level name. The source tree
keeps the design's floors as top-level folders (`shared/`, `services/`, `cli/`); the build maps
them into this package (`package-dir` in pyproject.toml), and the links beside this file give
the source tree the same import names for the tools that read it (mypy, pytest).
"""
