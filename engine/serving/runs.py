"""The model server from the app's side: write the serve folder from the store, start and stop
the server process, read its state, and ingest its request log into the store.

The server (engine/serving/worker.py) runs in its own process group, like the other background
workers, and never opens the database. `write_folder` gives it the production model, the API
keys (engine/serving/keys.py) and the limits; `publish_model` rewrites model.json after a
promotion, and the server swaps to the new model within seconds. `ingest_requests` is cheap
when nothing is new (one stat), so the app's poller calls it on every tick.

    python -m engine serve [--host 127.0.0.1] [--port 8000]   (the same server, in the foreground)
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from engine.audit import record
from engine.auth import check
from engine.errors import TuneloopError
from engine.jobs.runfolder import pid_alive, worker_command
from engine.models.registry import (
    DEFAULT_MODEL,
    current_prompt,
    ensure_default_model,
    production_model,
    resolve,
)
from engine.serving.folder import (
    LIMITS_FILE,
    LOG_FILE,
    MODEL_FILE,
    SERVER_FILE,
    SERVER_LOG,
    STATUS_FILE,
    Limits,
    read_json,
    read_limits,
    serve_dir,
    write_json,
)
from engine.serving.keys import export_keys
from store import serving as serving_store
from store import transaction

_ingest_lock = threading.Lock()  # the poller and a page may ingest at once: one at a time
# Whether the store may hold running requests: only then does an idle ingest look at the
# server's state (to mark them interrupted once it is gone); unknown at start.
_maybe_running = {"any": True}


def model_spec(con) -> dict:
    """model.json: the production model (its weights and adapter) and the prompt template."""
    model_id = production_model(con)
    if model_id == DEFAULT_MODEL:
        ensure_default_model(con, progress=lambda message: None)  # converted once, ~20 s
    ref = resolve(con, model_id)
    version, instruction = current_prompt(con)
    return {
        "model_id": model_id,
        "path": ref.path,
        "adapter": ref.adapter,
        "prompt_version": version,
        "instruction": instruction,
        "published": time.time(),
    }


def _same_model(a: dict | None, b: dict) -> bool:
    ignore = {"published"}
    return a is not None and {k: v for k, v in a.items() if k not in ignore} == {
        k: v for k, v in b.items() if k not in ignore
    }


def write_folder(con, limits: Limits | None = None) -> Path:
    """Write model.json, keys.json and limits.json (the given limits, else the folder's own,
    else the defaults) into the serve folder, creating it."""
    folder = serve_dir()
    folder.mkdir(parents=True, exist_ok=True)
    limits = limits or read_limits(folder)
    write_json(folder / LIMITS_FILE, limits.to_dict())
    publish_model(con)
    export_keys(con)
    return folder


def publish_model(con) -> bool:
    """Rewrite model.json when a serve folder exists and the production model or prompt
    changed (a running server then swaps to it); returns whether it wrote."""
    folder = serve_dir()
    if not folder.is_dir():
        return False
    spec = model_spec(con)
    if _same_model(read_json(folder / MODEL_FILE), spec):
        return False
    write_json(folder / MODEL_FILE, spec)
    return True


def model_outdated(con) -> bool:
    """Whether model.json names another model or prompt than the store's production ones (a
    prompt template saved since: promotions publish by themselves)."""
    folder = serve_dir()
    current = read_json(folder / MODEL_FILE) if folder.is_dir() else None
    return current is not None and not _same_model(current, model_spec(con))


@dataclass
class ServerState:
    running: bool  # a server process is alive
    state: str  # loading | ready | failed | stopped | none (never started)
    url: str | None
    pid: int | None
    model_id: str | None  # the model it serves
    loading: str | None  # the model it is loading for a swap
    error: str | None


def server_state(folder: Path | None = None) -> ServerState:
    folder = folder or serve_dir()
    status = read_json(folder / STATUS_FILE, {}) or {}
    pid = status.get("pid") or (read_json(folder / SERVER_FILE, {}) or {}).get("pid")
    running = pid_alive(pid)
    state = status.get("state", "starting" if running else "none")
    if not running and state in ("loading", "ready"):
        state = "stopped"  # it died without saying so
    return ServerState(
        running, state, status.get("url"), pid, status.get("model_id"), status.get("loading"),
        status.get("error") or (None if running else _log_tail(folder, state)),
    )  # fmt: skip


def _log_tail(folder: Path, state: str, lines: int = 12) -> str | None:
    path = folder / SERVER_LOG
    if state not in ("failed", "stopped") or not path.exists():
        return None
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or None


def start_server(
    con,
    user: dict,
    host: str = "127.0.0.1",
    port: int = 8000,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> int:
    """Write the serve folder and start the server in its own process group; returns its pid.
    It listens once status.json says ready (`server_state`)."""
    check(user, "serve")
    current = server_state()
    if current.running:
        raise TuneloopError(f"A server is running already (pid {current.pid}): stop it first.")
    folder = write_folder(con)
    ingest_requests(con, folder)
    (folder / STATUS_FILE).unlink(missing_ok=True)
    args = ["serve-worker", str(folder), "--host", host, "--port", str(int(port))]
    for flag, path in (("--ssl-certfile", ssl_certfile), ("--ssl-keyfile", ssl_keyfile)):
        if path:
            args += [flag, str(Path(path).expanduser().resolve())]
    with open(folder / SERVER_LOG, "ab") as log:
        proc = subprocess.Popen(
            worker_command(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )
    write_json(
        folder / SERVER_FILE,
        {"pid": proc.pid, "host": host, "port": port, "started": time.time(), "by": user["name"]},
    )
    record(con, user, "serve_start", host, port=port, https=bool(ssl_certfile), pid=proc.pid)
    return proc.pid


def stop_server(con, user: dict, grace_s: float = 15.0) -> bool:
    """Stop the server (SIGTERM: it finishes what it is answering, up to 10 s; then it is
    killed); returns whether one was running."""
    check(user, "serve")
    folder = serve_dir()
    current = server_state(folder)
    if not current.running:
        return False
    status = read_json(folder / STATUS_FILE, {}) or {}
    group = status.get("pgid") == current.pid or status.get("pgid") is None
    _signal(current.pid, signal.SIGTERM, group)
    deadline = time.time() + grace_s
    while time.time() < deadline and pid_alive(current.pid):
        time.sleep(0.2)
    if pid_alive(current.pid):
        _signal(current.pid, signal.SIGKILL, group)
    if read_json(folder / STATUS_FILE):
        write_json(folder / STATUS_FILE, read_json(folder / STATUS_FILE) | {"state": "stopped"})
    ingest_requests(con, folder)
    record(con, user, "serve_stop", current.url)
    return True


def _signal(pid: int, sig, group: bool):
    try:
        os.killpg(pid, sig) if group else os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def check_health(url: str, timeout: float = 2.0) -> dict | None:
    """The server's /healthz answer, or None when it does not answer. A local check of our own
    server, so a self-signed certificate is accepted."""
    context = None
    if url.startswith("https"):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout, context=context) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            return json.loads(e.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


INTERRUPTED = (
    "The server stopped before this request finished (killed or crashed): the client got no "
    "complete answer."
)


def ingest_requests(con, folder: Path | None = None) -> int:
    """Store the request log lines written since the last call; returns how many. Safe to
    call twice and from two threads; a torn last line waits for the next call.

    A request that reached the model has two lines: its start (stored as running) and its end
    (which replaces it). A start whose server has since stopped, or was followed by a new
    server's start, never gets an end: it is stored as interrupted."""
    folder = folder or serve_dir()
    path = folder / LOG_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        return 0
    file_id = f"{st.st_dev}:{st.st_ino}"
    with _ingest_lock:
        offset = serving_store.log_offset(con, file_id)
        if st.st_size <= offset:
            if _maybe_running["any"] and not server_state(folder).running:
                with transaction(con):
                    serving_store.mark_interrupted(con, None, INTERRUPTED)
                _maybe_running["any"] = False
            return 0
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(st.st_size - offset)
        end = data.rfind(b"\n") + 1
        rows, ends, restarts = _read_lines(data[:end])
        with transaction(con):
            serving_store.add_requests(con, rows, file_id, offset + end)
            serving_store.finish_requests(con, ends)
            for when in restarts:
                serving_store.mark_interrupted(con, when, INTERRUPTED)
            if not server_state(folder).running:
                serving_store.mark_interrupted(con, None, INTERRUPTED)
        _maybe_running["any"] = serving_store.running_requests(con) > 0
    return len(rows) + len(ends)


def _read_lines(data: bytes) -> tuple[list[dict], list[dict], list[float]]:
    """(new rows, ends of requests whose start an earlier call stored, server start times)."""
    rows, starts, ends, restarts = [], {}, [], []
    for line in data.splitlines():
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if not isinstance(raw, dict):
            continue
        if raw.get("event") == "server_start":
            if isinstance(raw.get("received"), int | float):
                restarts.append(float(raw["received"]))
            continue
        started = raw.get("event") == "start"
        if started:
            raw |= {"status": 0, "finish_reason": "running"}
        row = _request_row(raw)
        if row is None:
            continue
        rid = raw.get("id")
        if started and isinstance(rid, str):
            starts[rid] = len(rows)
        elif isinstance(rid, str) and rid in starts:
            rows[starts.pop(rid)] = row  # its start is in this batch: stored once, finished
            continue
        elif isinstance(rid, str):
            ends.append(row)
            continue
        rows.append(row)
    return rows, ends, restarts


def _request_row(data: dict) -> dict | None:
    """A logged request with the types the table wants, or None for a line that is not one."""
    try:
        row = {"received": float(data["received"]), "status": int(data["status"])}
        row["method"], row["path"] = str(data.get("method", ""))[:10], str(data["path"])[:200]
    except (ValueError, KeyError, TypeError):
        return None
    for name, kind in (("prompt_tokens", int), ("completion_tokens", int),
                       ("latency_ms", float), ("first_token_ms", float)):  # fmt: skip
        value = data.get(name)
        row[name] = kind(value) if isinstance(value, int | float) else None
    for name in ("key_name", "model_id", "finish_reason", "error", "request_text",
                 "response_text"):  # fmt: skip
        value = data.get(name)
        row[name] = None if value is None else str(value)
    return row
