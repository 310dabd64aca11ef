"""The one base class of the errors meant for people (house style 12).

    from engine.errors import TuneloopError
    raise TuneloopError("There is no run 42: pick one from `python -m engine jobs list`.")

A TuneloopError says what was wrong and what to do. The CLI prints it as `error: …` and exits 1
(engine/__main__.py), the pages show it with st.error; nothing else is caught that way, so any
other exception is a bug and shows its traceback. It is a ValueError, so the pages' existing
`except ValueError` handlers keep catching it. Subclasses: engine.auth.AuthProblem and
PermissionDenied, engine.data.sources.ImportProblem, engine.data.editing.StaleEdit. The store
cannot import the engine, so store.StoreUnavailable stays a RuntimeError and the CLI names it.
"""

from __future__ import annotations


class TuneloopError(ValueError):
    """Bad input or a refused action, explained for people: shown, never a traceback."""
