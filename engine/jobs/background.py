"""Short app-side work on a thread, so a click returns at once and the page shows progress.

For work that needs the store (so it cannot be a worker process: DuckDB allows one process
per file) and takes seconds to a minute: counting tokens, preparing a retrain. Each task has a
key; starting a key that is still running returns the running one, so a double click does the
work once. The thread works on its own cursor.

    state = start("count_tokens", con, count_tokens, model_dir, user=user)
    state["done"], state["total"], state["result"], state["error"]   # polled by the page
"""

from __future__ import annotations

import logging
import threading
import time

LOG = logging.getLogger(__name__)
_tasks: dict[str, dict] = {}
_lock = threading.Lock()


def start(key: str, con, fn, *args, **kwargs) -> dict:
    """Run fn(cursor, *args, progress=…, **kwargs) on a thread unless `key` already runs."""
    with _lock:
        state = _tasks.get(key)
        if state and state["thread"].is_alive():
            return state
        state = {"started": time.time(), "done": 0, "total": 0, "result": None, "error": None}
        _tasks[key] = state

    def progress(done, total):
        state["done"], state["total"] = done, total

    def work():
        cursor = con.cursor()
        try:
            state["result"] = fn(cursor, *args, progress=progress, **kwargs)
        except ValueError as e:  # a message for people (PermissionDenied is one too)
            state["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - shown to the user, the traceback logged
            LOG.exception("background task %s failed", key)
            state["error"] = f"{type(e).__name__}: {e}"
        finally:
            cursor.close()

    state["thread"] = threading.Thread(target=work, name=f"tuneloop-{key}", daemon=True)
    state["thread"].start()
    return state


def state(key: str) -> dict | None:
    """The task's state (running or finished and not yet taken), or None."""
    return _tasks.get(key)


def running(key: str) -> bool:
    task = _tasks.get(key)
    return bool(task and task["thread"].is_alive())


def take_finished(key: str) -> dict | None:
    """A finished task's state, handed out once; None while it runs or when there is none."""
    with _lock:
        state = _tasks.get(key)
        if state is None or state["thread"].is_alive():
            return None
        return _tasks.pop(key)
