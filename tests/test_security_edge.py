"""The app's edge and its data folder (issue 18): origins, hosts and routes refused before
Streamlit sees them (ui/web.py), the login throttle's buckets, the private data folder, a store
that cannot be opened, and plain HTTP on other interfaces. Browser-level versions of the
highs are in tests/test_security_browser.py."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys

import pytest

import store
from engine import auth
from engine.auth import TooManyAttempts
from engine.paths import secure_data_dir
from ui import web

T0 = 1_000_000_000.0


@pytest.fixture
def admin_con(con):
    auth.create_user(con, "ada", "admin password", "admin")
    auth.create_user(con, "rita", "reviewer pass", "reviewer")
    return con


# --- origins and hosts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin, host, secure, ok",
    [
        ("http://127.0.0.1:8501", "127.0.0.1:8501", False, True),
        ("http://localhost:8501", "localhost:8501", False, True),
        ("http://127.0.0.1:9999", "127.0.0.1:8501", False, False),  # another port: the probe
        ("http://localhost:8501", "127.0.0.1:8501", False, False),
        ("https://127.0.0.1:8501", "127.0.0.1:8501", False, False),  # scheme differs
        ("http://127.0.0.1:8501", "127.0.0.1:8501", True, False),
        ("null", "127.0.0.1:8501", False, False),  # a sandboxed frame or a file:// page
        (None, "127.0.0.1:8501", False, False),
        ("http://evil.example:8501", "evil.example:8501", False, False),  # DNS rebinding
    ],
)
def test_only_the_app_s_own_origin_may_talk_to_it(origin, host, secure, ok):
    assert (web.origin_problem(origin, host, secure) is None) is ok


def test_listed_origins_and_hosts_are_allowed(monkeypatch):
    monkeypatch.setenv("TUNELOOP_ALLOWED_ORIGINS", "https://tuneloop.example.org")
    monkeypatch.setenv("TUNELOOP_ALLOWED_HOSTS", "studio.lan")
    assert web.origin_problem("https://tuneloop.example.org/", "10.0.0.5:8501", True) is None
    assert web.origin_problem("http://studio.lan:8501", "studio.lan:8501", False) is None
    assert web.host_allowed("studio.lan") and not web.host_allowed("other.lan")


def _scope(kind: str, path: str, headers: dict, method: str = "GET") -> dict:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": kind, "path": path, "headers": raw, "scheme": "http"}
    return scope | ({"method": method} if kind == "http" else {})


APP = {"Host": "127.0.0.1:8501"}
OWN = APP | {"Origin": "http://127.0.0.1:8501"}


@pytest.mark.parametrize(
    "scope, status",
    [
        (_scope("http", "/_stcore/metrics", OWN), 404),
        (_scope("http", "/", {"Host": "attacker.example"}), 403),
        (_scope("websocket", "/_stcore/stream", APP), 403),  # no Origin
        (_scope("websocket", "/_stcore/stream", APP | {"Origin": "http://127.0.0.1:1"}), 403),
        (_scope("http", web.SESSION_ROUTE, APP, "POST"), 403),
        (
            _scope("http", "/_stcore/upload_file/x", APP | {"Origin": "http://localhost:1"}, "PUT"),
            403,
        ),
        (_scope("websocket", "/_stcore/stream", OWN), None),
        (_scope("http", "/", APP), None),
        (_scope("http", "/_stcore/health", APP), None),
        (_scope("http", web.SESSION_ROUTE, OWN, "POST"), None),
    ],
)
def test_the_gate_refuses_before_streamlit_sees_the_request(scope, status):
    refused = web._refusal(scope)
    assert (refused and refused[0]) == status


def test_a_refused_websocket_is_closed_before_it_is_accepted():
    sent, reached = [], []

    async def app(scope, receive, send):
        reached.append(scope)

    async def send(message):
        sent.append(message)

    scope = _scope("websocket", "/_stcore/stream", APP | {"Origin": "http://127.0.0.1:1"})
    asyncio.run(web.OriginGate(app)(scope, None, send))
    assert sent == [{"type": "websocket.close", "code": 1008}] and not reached


# --- the cookie route -------------------------------------------------------------------------


def _post(endpoint, body: bytes, chunks: int = 1):
    """Call a Starlette endpoint with `body` sent in `chunks` pieces; (status, headers, read)."""
    from starlette.requests import Request

    pieces = [body[i::chunks] for i in range(chunks)] if chunks > 1 else [body]
    read = []

    async def receive():
        piece = pieces.pop(0) if pieces else b""
        read.append(len(piece))
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    scope = _scope("http", web.SESSION_ROUTE, OWN, "POST") | {"query_string": b"", "server": None}
    response = asyncio.run(endpoint(Request(scope, receive)))
    return response.status_code, response.headers, read


def test_a_cookie_code_sets_http_only_cookies_once():
    code = web.offer_cookies([("tuneloop_session_8501", "signed", 3600)])
    assert web.code_pending(code)
    status, headers, _ = _post(web.session_endpoint, json.dumps({"code": code}).encode())
    cookie = headers["set-cookie"]
    assert status == 204 and "tuneloop_session_8501=signed" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert not web.code_pending(code)
    again = _post(web.session_endpoint, json.dumps({"code": code}).encode())
    assert again[0] == 400  # one time only


def test_an_oversized_cookie_request_is_refused_before_it_is_read_whole():
    status, _, read = _post(web.session_endpoint, b"x" * 40_000, chunks=20)
    assert status == 400
    assert sum(read) < 40_000  # stopped once past MAX_BODY


# --- the login throttle -----------------------------------------------------------------------


@pytest.mark.slow
def test_local_users_do_not_share_one_client_bucket(admin_con, monkeypatch):
    monkeypatch.setitem(auth.FREE_FAILURES, "client", 4)
    for i in range(10):  # someone's typos, or a local script, from the loopback address
        assert auth.check_login(admin_con, f"guess{i}", "x", "127.0.0.1", now=T0 + i) is None
    user = auth.check_login(admin_con, "ada", "admin password", "127.0.0.1", now=T0 + 11)
    assert user["name"] == "ada"
    for i in range(4):  # a remote client is still held
        auth.check_login(admin_con, f"guess{i}", "x", "10.6.6.6", now=T0 + 20 + i)
    with pytest.raises(TooManyAttempts):
        auth.check_login(admin_con, "ada", "admin password", "10.6.6.6", now=T0 + 24)


def test_a_known_device_passes_the_user_s_backoff_but_a_stranger_does_not(admin_con):
    con = admin_con
    device = auth.device_token(con, "ada")
    for i in range(5):  # a stranger guesses the admin's password
        auth.check_login(con, "ada", "wrong", "10.6.6.6", now=T0 + i)
    with pytest.raises(TooManyAttempts):
        auth.check_login(con, "ada", "admin password", "10.0.0.1", now=T0 + 5)
    assert auth.known_device(con, device, "ada")
    assert not auth.known_device(con, device, "rita")  # a device of ada is not one of rita
    assert not auth.known_device(con, device + "x", "ada")
    user = auth.check_login(con, "ada", "admin password", "10.0.0.1", known_device=True, now=T0 + 9)
    assert user["name"] == "ada"
    # A wrong password from the known device is still a failure.
    assert auth.check_login(con, "ada", "wrong", "10.0.0.1", known_device=True, now=T0 + 10) is None


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(monkeypatch):
    assert web.forwarded_client("10.0.0.7", "6.6.6.6") == "10.0.0.7"
    assert web.forwarded_client("127.0.0.1", "6.6.6.6") == "127.0.0.1"  # a local liar
    monkeypatch.setenv("TUNELOOP_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.2")
    assert web.forwarded_client("127.0.0.1", "1.1.1.1, 6.6.6.6") == "6.6.6.6"
    assert web.forwarded_client("10.0.0.7", "6.6.6.6") == "10.0.0.7"
    assert web.forwarded_client(None, None) == "local"


# --- the data folder --------------------------------------------------------------------------


def test_the_data_folder_is_made_private_with_a_notice(tmp_path):
    home = tmp_path / "home"
    (home / "uploads" / "x").mkdir(parents=True)
    for folder in (home, home / "uploads", home / "uploads" / "x"):
        folder.chmod(0o755)
    for name in ("tuneloop.duckdb", "uploads/x/cases.csv"):
        (home / name).write_text("secret")
        (home / name).chmod(0o644)
    notices = secure_data_dir(home)
    assert len(notices) == 2 and "3 folders" in notices[0] and "2 files" in notices[1]
    assert stat.S_IMODE((home / "tuneloop.duckdb").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "uploads" / "x").stat().st_mode) == 0o700
    assert secure_data_dir(home) == []  # nothing left to fix, nothing said


def test_a_new_data_folder_and_database_are_private(tmp_path, monkeypatch):
    home = tmp_path / "fresh"
    env = os.environ | {"TUNELOOP_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "engine", "users", "list"], env=env, check=True)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "tuneloop.duckdb").stat().st_mode) == 0o600


def test_a_read_only_folder_is_not_called_locked(tmp_path, monkeypatch):
    import store.db

    error = OSError("IO Error: Cannot open file: Permission denied")
    monkeypatch.setattr(store.db.os, "access", lambda path, mode: False)  # root writes anyway
    why = store.db._why_unavailable(tmp_path / "tuneloop.duckdb", error)
    assert "read-only" in why and "another process" not in why


def test_a_locked_store_says_another_process_holds_it(tmp_path):
    path = tmp_path / "tuneloop.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,sys; c=duckdb.connect({str(path)!r}); "
         "print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(store.StoreUnavailable, match="another process holds it"):
            store.connect(path)
    finally:
        holder.stdin.close()
        holder.wait(20)


def test_visitors_see_no_paths_when_the_store_cannot_open(home, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    def unavailable(path):
        raise store.StoreUnavailable(f"Cannot open the database {path}: another process holds it.")

    monkeypatch.setattr(store, "connect", unavailable)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert "cannot open its data store" in shown and str(home) not in shown


# --- plain HTTP on other interfaces -----------------------------------------------------------


def test_plain_http_on_all_interfaces_is_refused_or_warned(monkeypatch):
    from streamlit import config

    monkeypatch.setattr(
        config, "get_option", lambda k: "0.0.0.0" if k == "server.address" else None
    )
    assert "plain HTTP" in web.plain_http_warning()
    monkeypatch.delenv("TUNELOOP_ALLOW_PLAIN_HTTP", raising=False)
    with pytest.raises(SystemExit, match="Refusing to start"):
        web.check_plain_http()
    monkeypatch.setenv("TUNELOOP_ALLOW_PLAIN_HTTP", "1")
    web.check_plain_http()  # starts, with the warning printed
    monkeypatch.setattr(
        config, "get_option", lambda k: "127.0.0.1" if k == "server.address" else None
    )
    assert web.plain_http_warning() is None
