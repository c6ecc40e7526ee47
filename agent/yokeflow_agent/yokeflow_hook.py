"""`yokeflow-hook` run by path: `python -I -S .../yokeflow_agent/yokeflow_hook.py ARGS`.

This is the command `agents connect` writes into each client's hook configuration. An agent CLI
starts the hook anew for every tool call, and what a Python process imports before the hook's
first byte is most of what the hook costs. pip's `yokeflow-hook` console script imports `re`
first (and with it `enum`, `functools`, `collections`), and `site` runs before it (in an
editable install, with import finders of its own); `-I -S` starts Python without `site`, user
settings or `PYTHON*` variables, and this file puts only the folder holding the package on the
path, installed or not. The hook needs nothing beyond the standard library.
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    from yokeflow_agent.adapters import main

    sys.exit(main())
