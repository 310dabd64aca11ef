"""The API server process: serves the model of a serve folder over an OpenAI-compatible API.

    python -m engine serve-worker SERVE_DIR [--host 127.0.0.1] [--port 8000]
                                            [--ssl-certfile cert.pem --ssl-keyfile key.pem]

Like every background worker it never opens the database: it reads model.json, keys.json and
limits.json from the serve folder (engine/serving/folder.py) and writes status.json and
requests.jsonl there. A watcher thread re-reads the app's files when they change (checked every
second): a revoked key stops working at once; a new model.json (a promotion) loads the new
model in the background while the old one keeps answering, then swaps; requests already
running finish on the model they started with. Port 0 picks a free port (status.json says
which). Serving beyond the loopback interface needs a certificate: keys must not cross a
network in the clear. A server whose serve folder is deleted stops by itself.
Slow clients are cut off: a connection whose request is not in within request_timeout_s (+5 s
for the app's own 408) is closed, idle keep-alive ones after keep_alive_s, and past
max_connections requests get 503 (limits.json; engine/serving/limits.py).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
from collections import deque
from pathlib import Path

from engine.errors import TuneloopError
from engine.serving.batcher import Batcher, LoadedModel
from engine.serving.folder import (
    KEYS_FILE,
    LIMITS_FILE,
    LOG_FILE,
    MODEL_FILE,
    STATUS_FILE,
    hash_key,
    read_json,
    read_limits,
    write_json,
)
from engine.serving.limits import AuthThrottle, RefusalLog, clip, timed_protocol

WATCH_EVERY_S = 1.0
log = logging.getLogger("tuneloop.serving")


class RateLimiter:
    """Requests per minute per key, over a sliding 60-second window."""

    def __init__(self, window_s: float = 60.0):
        self.window_s = window_s
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()

    def check(self, name: str, limit: int, now: float | None = None) -> float | None:
        """Count a request of key `name`; None when it may go ahead, else the seconds until
        it may (the request is then not counted)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(name, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= limit:
                return hits[-limit] + self.window_s - now
            hits.append(now)
            return None


class Server:
    """What the API reads (model, keys, limits) and keeps in step with the serve folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.limits = read_limits(self.folder)
        self.keys: list[dict] = []
        self.model: LoadedModel | None = None
        self.loading: str | None = None  # the model id being loaded for a swap
        self.error: str | None = None  # why the last model.json could not be served
        self.url: str | None = None
        self.batcher = Batcher(lambda: self.limits)
        self.rate = RateLimiter()
        self.throttle = AuthThrottle(free=self.limits.auth_failures_free)
        self.refusals = RefusalLog(self._write_line)
        self._seen: dict[str, tuple] = {}
        self._log_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._stop = threading.Event()
        self.shutdown = lambda: None  # ends the HTTP server (set by `serve`)

    # --- keys and logs, called by the API --------------------------------------------------
    def find_key(self, token: str) -> dict | None:
        """The key whose hash matches; every stored hash is compared, in constant time."""
        digest = hash_key(token)
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, str(key.get("key_hash", ""))):
                found = key
        return found

    def log_request(self, record: dict, client: str = "?"):
        """One line in requests.jsonl; prompts and answers only for keys that opted in. Every
        field a client shapes is cut short, and refusals (401, 408, 429, or any error without
        a valid key: nothing generated) are coalesced per client, so a flood of them costs a
        few bounded lines."""
        record = dict(record)
        if not record.pop("log_texts", False):
            record.pop("request_text", None)
            record.pop("response_text", None)
        for name in ("method", "path", "error", "key_name", "model_id", "finish_reason"):
            record[name] = clip(record.get(name), 10 if name == "method" else 300)
        status = record.get("status") or 0
        refused = status in (401, 408, 429) or (status >= 400 and record.get("key_name") is None)
        if refused and "id" not in record:
            self.refusals.add(client, record)
        else:
            self._write_line(record)

    def log_start(self, record: dict):
        """The line written before generation starts, so that a request cut short by a crash
        (kill -9) is still on record: the app shows a start without its end as interrupted."""
        keep = ("id", "received", "method", "path", "key_name", "model_id", "prompt_tokens",
                "body_bytes", "generations", "max_tokens")  # fmt: skip
        self._write_line({"event": "start"} | {k: clip(record.get(k)) for k in keep})

    def _write_line(self, record: dict):
        line = (json.dumps(record, default=str) + "\n").encode("utf-8")
        with self._log_lock:  # readable by this user only: it may hold prompts
            fd = os.open(self.folder / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    # --- the serve folder ------------------------------------------------------------------
    def _changed(self, name: str) -> bool:
        try:
            st = (self.folder / name).stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if self._seen.get(name) == stamp:
            return False
        self._seen[name] = stamp
        return True

    def refresh(self):
        """Re-read what changed since the last call."""
        if self._changed(KEYS_FILE):
            self.keys = (read_json(self.folder / KEYS_FILE, {}) or {}).get("keys", [])
        if self._changed(LIMITS_FILE):
            try:
                self.limits = read_limits(self.folder)
                self.throttle.free = self.limits.auth_failures_free
            except (TypeError, ValueError) as e:
                self.error = f"limits.json ignored: {e}"
        if self._changed(MODEL_FILE):
            spec = read_json(self.folder / MODEL_FILE)
            if spec and (self.model is None or spec != self.model.spec):
                threading.Thread(target=self.swap, args=(spec,), daemon=True).start()

    def swap(self, spec: dict):
        """Load `spec`'s model while the current one serves, then make it the one new
        requests get. A failure keeps the current model and says why in status.json."""
        self.loading = spec.get("model_id")
        self.write_status()
        try:
            current = self.model
            if current is not None and current.same_weights(spec):
                new = current.with_spec(spec)
            else:
                new = LoadedModel(spec)
            if read_json(self.folder / MODEL_FILE) == spec:  # a newer promotion waits its turn
                self.model, self.error = new, None
        except Exception as e:  # noqa: BLE001 - keep serving the model we have
            log.exception("loading %s failed", spec.get("model_id"))
            self.error = f"Could not load {spec.get('model_id')}: {type(e).__name__}: {e}"
        finally:
            self.loading = None
            self.write_status()

    def write_status(self, state: str | None = None):
        with self._status_lock:
            self._write_status(state)

    def _write_status(self, state: str | None):
        status = read_json(self.folder / STATUS_FILE, {}) or {}
        status |= {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "url": self.url,
            "model_id": self.model.model_id if self.model else None,
            "loading": self.loading,
            "error": self.error,
            "updated": time.time(),
        }
        if state:
            status["state"] = state
        write_json(self.folder / STATUS_FILE, status)

    def watch(self):
        while not self._stop.wait(WATCH_EVERY_S):
            if not self.folder.is_dir():  # its data folder was deleted: nothing to serve
                log.warning("%s is gone: stopping", self.folder)
                self.shutdown()
                return
            try:
                self.refusals.flush()
                self.refresh()
            except Exception:  # noqa: BLE001 - a bad file must not stop the watching
                log.exception("reading the serve folder failed")

    def start(self) -> Server:
        """Read the folder, load the model (in this thread), start batching and watching."""
        self._changed(KEYS_FILE), self._changed(LIMITS_FILE), self._changed(MODEL_FILE)
        self.keys = (read_json(self.folder / KEYS_FILE, {}) or {}).get("keys", [])
        spec = read_json(self.folder / MODEL_FILE)
        if not spec:
            raise TuneloopError(f"{self.folder / MODEL_FILE} is missing: nothing to serve.")
        self.model = LoadedModel(spec)
        # Requests that a previous server started and never ended were cut short by its end.
        self._write_line({"event": "server_start", "received": time.time(), "pid": os.getpid()})
        self.batcher.start()
        threading.Thread(target=self.watch, name="tuneloop-watch", daemon=True).start()
        return self

    def stop(self):
        self._stop.set()
        self.refusals.flush(everything=True)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one). Beyond loopback only with TLS (checked by
    `serve`)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise TuneloopError(f"Cannot listen on {host}:{port}: {e.strerror}.") from None
    sock.listen(2048)
    return sock


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise TuneloopError(f"Unknown host {host!r}.") from None
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def serve(folder, host="127.0.0.1", port=8000, ssl_certfile=None, ssl_keyfile=None):
    """Run the server in this process until SIGINT or SIGTERM."""
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from engine.serving.api import create_app

    folder = Path(folder)
    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise TuneloopError("HTTPS needs both --ssl-certfile and --ssl-keyfile.")
    for path in (ssl_certfile, ssl_keyfile):
        if path and not Path(path).is_file():
            raise TuneloopError(f"{path} does not exist.")
    if not ssl_certfile and not is_loopback(host):
        raise TuneloopError(
            f"Serving on {host} sends API keys over the network in the clear: give "
            "--ssl-certfile and --ssl-keyfile (docs/serving.md), or serve on 127.0.0.1."
        )
    server = Server(folder)
    try:
        sock = bind(host, port)
        shown = f"[{host}]" if ":" in host else host
        server.url = f"{'https' if ssl_certfile else 'http'}://{shown}:{sock.getsockname()[1]}"
        server.write_status("loading")
        server.start()
    except Exception as e:
        server.error = str(e)
        server.write_status("failed")
        if isinstance(e, ValueError | RuntimeError):
            raise
        raise TuneloopError(f"Cannot serve the model of {folder / MODEL_FILE}: {e}") from e
    config = uvicorn.Config(
        create_app(server),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=10,
        http=timed_protocol(AutoHTTPProtocol, server.limits.request_timeout_s + 5),
        timeout_keep_alive=server.limits.keep_alive_s,
        limit_concurrency=server.limits.max_connections,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    server.write_status("ready")
    print(f"Serving {server.model.model_id} at {server.url}/v1 (Ctrl+C stops).", flush=True)
    http = uvicorn.Server(config)
    server.shutdown = lambda: setattr(http, "should_exit", True)  # graceful, as on SIGTERM
    try:
        http.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl+C: uvicorn raises it again once it has shut down
        pass
    finally:
        server.stop()
        if folder.is_dir():
            server.write_status("stopped")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine serve-worker", description=__doc__)
    parser.add_argument("serve_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ssl-certfile")
    parser.add_argument("--ssl-keyfile")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return serve(args.serve_dir, args.host, args.port, args.ssl_certfile, args.ssl_keyfile)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
