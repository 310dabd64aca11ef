"""The API server against abusive clients: wrong keys back off (429, Retry-After, held) and
cost bounded log lines, slow clients are cut off (408, then closed), a request cannot ask for
too many answers, and a request in flight when the server is killed shows as interrupted."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import store
from engine.auth import CONSOLE
from engine.jobs.runfolder import read_json
from engine.models.registry import PRODUCTION, register_base
from engine.serving import keys, runs
from engine.serving.folder import LOG_FILE, STATUS_FILE, Limits
from engine.serving.limits import AuthThrottle, RefusalLog, clip
from store import serving as serving_store
from store import splits as settings_store
from tests.conftest import ROOT
from tests.test_serving import call, wait_until

pytestmark = pytest.mark.slow  # a real API server with a model in every test (fast loop: out)

LIMITS = Limits(
    max_tokens=512, default_max_tokens=8, requests_per_minute=10_000, batch_wait_ms=10,
    auth_failures_free=3, request_timeout_s=2, max_generations=4, keep_alive_s=1,
)  # fmt: skip


def test_auth_throttle_backs_off_and_stays_bounded():
    t = AuthThrottle(free=2, max_delay=8, forget_s=100, max_clients=3)
    assert [t.fail("a", now=0) for _ in range(2)] == [0, 0]
    assert t.fail("a", now=0) == 1 and t.fail("a", now=0) == 2 and t.fail("a", now=0) == 4
    assert t.fail("a", now=0) == 8 and t.fail("a", now=0) == 8  # capped
    assert t.locked_for("a", now=3) == 5 and t.locked_for("b", now=3) == 0
    assert t.fail("a", now=200) == 0  # forgotten after a quiet spell
    for client in "bcdefg":
        t.fail(client, now=300)
    assert len(t._clients) == 3  # least recently seen addresses go first
    t.hold("x", +1), t.hold("x", +1)
    assert not t.saturated("x")
    t.max_held = 2
    assert t.saturated("x")
    t.hold("x", -2)
    assert t.held == {}


def test_refusals_are_coalesced_into_bounded_lines():
    lines = []
    log = RefusalLog(lines.append, window_s=10, max_clients=2)
    refusal = {"status": 401, "path": "/v1/models", "error": "Incorrect API key provided."}
    for i in range(50):
        log.add("1.2.3.4", dict(refusal), now=i * 0.1)
    assert len(lines) == 1
    log.flush(now=11)
    assert len(lines) == 2 and lines[1]["repeated"] == 49 and "49 more" in lines[1]["error"]
    for client in ("a", "b", "c", "d"):
        log.add(client, dict(refusal), now=20)
    assert len(lines) == 6 and len(log._open) <= 2
    assert clip("x" * 5000) == "x" * 300 + "…" and clip(7) == 7


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """A server process of its own (the limits above) on a free port."""
    home = tmp_path_factory.mktemp("limits-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNELOOP_HOME", str(home))
        con = store.connect(":memory:")
        register_base(con, "tiny", str(tiny_model))
        settings_store.set_setting(con, PRODUCTION, "tiny")
        folder = runs.write_folder(con, LIMITS)
        key = keys.create_key(con, CONSOLE, "good")
        started = start(folder)
        try:
            yield started | {"con": con, "key": key, "folder": folder}
        finally:
            started["proc"].send_signal(signal.SIGTERM)
            started["proc"].wait(timeout=30)


def start(folder):
    (folder / STATUS_FILE).unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve-worker", str(folder), "--port", "0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    status = wait_until(
        lambda: (s := read_json(folder / STATUS_FILE)) and s.get("state") != "loading" and s,
        timeout=120,
    )
    assert status["state"] == "ready", status
    return {"proc": proc, "url": status["url"], "port": int(status["url"].rsplit(":", 1)[1])}


@pytest.mark.slow
def test_wrong_keys_back_off_while_a_good_key_still_works(server):
    url, path = server["url"], "/v1/models"
    log = server["folder"] / LOG_FILE
    before = log.stat().st_size if log.exists() else 0
    secret = "tl-" + "guess" * 1000
    assert [call(url, "GET", path, key=secret)[0] for _ in range(3)] == [401] * 3
    begun = time.monotonic()
    status, headers, body = call(url, "GET", path, key=secret)
    assert status == 429 and body["error"]["code"] == "too_many_failed_authentications"
    assert int(headers["retry-after"]) >= 1 and time.monotonic() - begun >= 0.9  # held
    assert call(url, "GET", path, key=server["key"])[0] == 200  # another local client
    # A flood of parallel guesses: past the held ones, refused without being checked.
    answers = []
    threads = [
        threading.Thread(target=lambda: answers.append(call(url, "GET", path, key=secret)[0]))
        for _ in range(12)
    ]
    begun = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answers == [429] * 12 and time.monotonic() - begun >= 1.5
    call(url, "GET", "/v1/" + "p" * 5000, key=secret)
    time.sleep(12)  # the refusal window ends; the watcher writes the summary
    with open(log, "rb") as f:
        f.seek(before)
        lines = f.read().decode().splitlines()
    assert 1 <= len(lines) <= 8, lines  # 17 refusals, a few lines
    assert all(len(line) < 1500 for line in lines) and "guess" not in "".join(lines)
    assert any(json.loads(line).get("repeated") for line in lines)


def test_a_request_cannot_ask_for_too_many_answers(server):
    url, key = server["url"], server["key"]
    body = {"model": "production", "prompt": ["a", "b", "c"], "n": 2, "max_tokens": 2}
    status, _, answer = call(url, "POST", "/v1/completions", body, key=key)
    assert status == 400 and answer["error"]["param"] == "n"
    assert "6 answers" in answer["error"]["message"] and "at most 4" in answer["error"]["message"]
    body |= {"prompt": ["a", "b"]}
    status, _, answer = call(url, "POST", "/v1/completions", body, key=key)
    assert status == 200 and len(answer["choices"]) == 4


def trickle(port, head: bytes, every=0.3, limit=30.0) -> tuple[bytes, float]:
    """Send `head`, then one byte every `every` s until the server closes the connection;
    returns what it answered and after how long it closed."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(every)
    begun, answer = time.monotonic(), b""
    sock.sendall(head)
    try:
        while time.monotonic() - begun < limit:
            try:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            except TimeoutError:
                pass
            except ConnectionResetError:  # closed while our last byte was on its way
                break
            try:
                sock.sendall(b"x")
            except OSError:
                break
    finally:
        sock.close()
    return answer, time.monotonic() - begun


@pytest.mark.slow
def test_slow_clients_are_cut_off(server):
    port, key = server["port"], server["key"]
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    ).encode()
    answer, took = trickle(port, head)
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer, answer
    assert took < LIMITS.request_timeout_s + 2
    answer, took = trickle(port, head.replace(key.encode(), b"tl-wrong"))  # refused, body trickles
    # 401, or 429 once the throttle test has locked this address: refused, then closed.
    assert answer[:12] in (b"HTTP/1.1 401", b"HTTP/1.1 429") and took < LIMITS.request_timeout_s + 8
    answer, took = trickle(port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers
    assert answer == b"" and took < LIMITS.request_timeout_s + 8
    assert call(server["url"], "GET", "/v1/models", key=key)[0] == 200


@pytest.mark.slow
def test_a_request_in_flight_at_kill_9_is_logged_as_interrupted(server, tmp_path):
    folder, con, key = server["folder"], server["con"], server["key"]
    runs.ingest_requests(con, folder)
    victim = start(folder)  # a second server on the same folder, the one killed
    body = {"model": "production", "max_tokens": 500, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Tell a long story."}]}  # fmt: skip

    def ask():
        try:
            call(victim["url"], "POST", "/v1/chat/completions", body, key=key)
        except (OSError, http.client.HTTPException):  # the server is killed mid-answer
            pass

    threading.Thread(target=ask, daemon=True).start()
    log = folder / LOG_FILE
    wait_until(lambda: '"event": "start"' in log.read_text().splitlines()[-1], timeout=30)
    time.sleep(0.3)
    os.kill(victim["proc"].pid, signal.SIGKILL)
    victim["proc"].wait(timeout=30)
    assert read_json(folder / STATUS_FILE)["pid"] == victim["proc"].pid  # the one now dead
    runs.ingest_requests(con, folder)
    rows = serving_store.recent_requests(con, 5)
    cut = rows[rows["finish_reason"] == "interrupted"]
    assert len(cut) == 1 and cut["result"].iloc[0] == "⚠ interrupted"
    assert cut["key_name"].iloc[0] == "good" and "killed" in cut["error"].iloc[0]
    assert serving_store.request_stats(con, since=0)["errors"] >= 1


def test_serve_page_shows_errors_as_errors_in_one_clock(home):
    from engine.paths import db_path
    from tests.conftest import signed_in_app

    con = store.connect(db_path())
    now = time.time()
    rows = [
        {"received": now - 60, "status": 200, "method": "POST", "path": "/v1/completions",
         "key_name": "good", "latency_ms": 40.0},
        {"received": now - 30, "status": 401, "method": "GET", "path": "/v1/models",
         "error": "Incorrect API key provided."},
        {"received": now - 10, "status": 0, "method": "POST", "path": "/v1/completions",
         "finish_reason": "running"},
    ]  # fmt: skip
    serving_store.add_requests(con, rows, "f", 0)
    serving_store.mark_interrupted(con, None, runs.INTERRUPTED)
    per_minute = serving_store.requests_per_minute(con, since=0)
    recent = serving_store.recent_requests(con)
    assert per_minute["minute"].dt.tz is None and recent["received"].dt.tz is None  # both UTC
    utc = time.gmtime(now - 30)
    assert recent["received"].iloc[1].hour == utc.tm_hour  # UTC, whatever the local zone
    assert recent["result"].tolist() == ["⚠ interrupted", "⚠ 401", "ok 200"]
    con.close()

    at = signed_in_app("admin", "admin", "pages/serve.py")
    assert not at.exception, at.exception
    requests = next(m for m in at.metric if m.label == "Requests (last hour)")
    assert requests.value == "3" and requests.delta == "⚠ 2 errors"
    assert requests.proto.color == requests.proto.MetricColor.RED
