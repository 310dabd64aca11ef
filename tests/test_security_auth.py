"""Security of the front door: one gate for every page, first access with a setup token,
throttled logins, sessions that survive reloads and end when revoked, account management.

Engine-level tests run a fake clock; AppTests drive the app in-process; the browser tests start
one server for the module and skip when Chromium is missing."""

import ast
import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest
from streamlit.testing.v1 import AppTest

import store
from engine import auth
from engine.auth import AuthProblem, TooManyAttempts
from engine.paths import data_dir, db_path
from store import users as users_store
from tests.conftest import ROOT
from tests.test_e2e import CHROMIUM, start_server, stop_server

T0 = 1_000_000_000.0  # the fake clock's start
ADA = {"name": "ada", "role": "admin"}


@pytest.fixture
def admin_con(con):
    auth.create_user(con, "ada", "admin password", "admin")
    auth.create_user(con, "rita", "reviewer pass", "reviewer")
    return con


# --- first access -------------------------------------------------------------------------------


def test_setup_token_is_private_one_time_and_required(con, tmp_path):
    token = auth.ensure_setup_token(tmp_path)
    path = tmp_path / auth.SETUP_TOKEN_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert auth.ensure_setup_token(tmp_path) == token  # a restart prints the same one
    with pytest.raises(AuthProblem, match="Wrong setup token"):
        auth.create_first_admin(con, tmp_path, "guessed", "ada", "admin password")
    assert users_store.count_users(con) == 0
    assert auth.create_first_admin(con, tmp_path, token, "ada", "admin password") == {
        "name": "ada",
        "role": "admin",
    }
    assert not path.exists()
    with pytest.raises(AuthProblem):  # the token is spent
        auth.create_first_admin(con, tmp_path, token, "eve", "admin password")
    assert users_store.list_users(con, T0, 3600)["name"].tolist() == ["ada"]


def test_racing_setups_create_one_admin(tmp_path, monkeypatch):
    """Two set-ups that both see "no accounts yet" before either writes: one admin results."""
    con = store.connect(tmp_path / "race.duckdb")
    token = auth.ensure_setup_token(tmp_path)
    real_count, barrier, seen = users_store.count_users, threading.Barrier(2, timeout=30), set()

    def count_then_wait(c):
        n = real_count(c)
        if threading.get_ident() not in seen:  # the check inside the set-up transaction
            seen.add(threading.get_ident())
            barrier.wait()
        return n

    monkeypatch.setattr(users_store, "count_users", count_then_wait)
    results = []

    def set_up(name):
        try:
            results.append(auth.create_first_admin(con.cursor(), tmp_path, token, name, "pw-long!"))
        except AuthProblem as e:
            results.append(e)

    threads = [threading.Thread(target=set_up, args=(n,)) for n in ("ada", "eve")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(type(r).__name__ for r in results) == ["AuthProblem", "dict"]
    assert con.execute("SELECT count(*) FROM users WHERE role = 'admin'").fetchone() == (1,)


def test_cli_manages_accounts(home, monkeypatch, capsys):
    import io

    from engine.__main__ import main

    def run(*argv, stdin=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return main(["users", *argv])

    token_file = data_dir() / auth.SETUP_TOKEN_FILE
    auth.ensure_setup_token(data_dir())
    assert run("add", "ada", "--role", "admin", "--password-stdin", stdin="admin password\n") == 0
    assert not token_file.exists()  # the CLI made the admin: no set-up left to do
    assert run("add", "rita", "--password-stdin", stdin="reviewer pass\n") == 0
    assert run("passwd", "rita", "--password-stdin", stdin="a new password\n") == 0
    assert run("disable", "rita") == 0
    assert run("delete", "ada") == 1  # the last admin
    assert "last admin" in capsys.readouterr().err
    assert run("list") == 0
    assert "rita" in capsys.readouterr().out
    con = store.connect(db_path())
    with pytest.raises(AuthProblem, match="disabled"):
        auth.check_login(con, "rita", "a new password")
    con.close()
    assert run("enable", "rita") == 0 and run("logout", "rita") == 0
    assert run("delete", "rita") == 0
    con = store.connect(db_path())
    assert users_store.get_user(con, "rita") is None
    assert auth.check_login(con, "ada", "admin password") == {"name": "ada", "role": "admin"}


# --- logins --------------------------------------------------------------------------------------


def test_failures_lock_a_user_out_with_backoff(admin_con):
    con = admin_con
    for i in range(5):
        assert auth.check_login(con, "rita", "wrong", "10.0.0.1", now=T0 + i) is None
    with pytest.raises(TooManyAttempts, match=r"try again in 2 s") as refused:
        auth.check_login(con, "rita", "reviewer pass", "10.0.0.2", now=T0 + 4.5)  # right one
    assert refused.value.retry_after == 2
    assert auth.check_login(con, "rita", "wrong", "10.0.0.1", now=T0 + 7) is None  # 6 failures
    assert auth.login_wait(con, "rita", "10.0.0.9", now=T0 + 7) == pytest.approx(4)
    assert auth.login_wait(con, "ada", "10.0.0.9", now=T0 + 7) == 0  # other users are not held
    user = auth.check_login(con, "rita", "reviewer pass", "10.0.0.1", now=T0 + 12)
    assert user == {"name": "rita", "role": "reviewer"}
    assert auth.login_wait(con, "rita", "10.0.0.1", now=T0 + 12) == 0  # a success resets it
    for _ in range(40):  # a long attack: the wait tops out at 15 minutes
        con.execute("INSERT INTO login_attempts VALUES (?, 'rita', 'x', FALSE, FALSE)", [T0 + 20])
    assert auth.login_wait(con, "rita", "y", now=T0 + 20) == auth.MAX_BACKOFF
    refused_rows = con.execute("SELECT count(*) FROM login_attempts WHERE refused").fetchone()
    assert refused_rows == (1,)


def test_one_client_trying_many_names_is_held_too(admin_con, monkeypatch):
    con = admin_con
    monkeypatch.setitem(auth.FREE_FAILURES, "client", 4)  # 20 by default: fewer bcrypt checks
    for i in range(auth.FREE_FAILURES["client"]):
        assert auth.check_login(con, f"guess{i}", "wrong", "10.6.6.6", now=T0 + i * 0.01) is None
    with pytest.raises(TooManyAttempts):
        auth.check_login(con, "ada", "admin password", "10.6.6.6", now=T0 + 1)
    assert auth.check_login(con, "ada", "admin password", "10.0.0.1", now=T0 + 1)["name"] == "ada"


@pytest.mark.real_bcrypt
def test_unknown_names_take_as_long_as_known_ones(admin_con):
    """The bcrypt check dominates: the same hash cost whether the name exists or not."""
    known, unknown = [], []
    for i in range(4):  # interleaved, so load on the machine hits both alike
        for name, times in (("rita", known), (f"nobody{i}", unknown)):
            start = time.perf_counter()
            auth.check_login(admin_con, name, "wrong", f"c{i}", now=T0 + 1000 * i)
            times.append(time.perf_counter() - start)
    assert 0.7 < min(unknown) / min(known) < 1.4, (known, unknown)


def test_disabled_user_cannot_log_in_and_their_sessions_end(admin_con):
    con = admin_con
    cookie = auth.start_session(con, "rita")
    auth.set_disabled(con, ADA, "rita", True)
    assert auth.session_user(con, cookie) is None
    with pytest.raises(AuthProblem, match="disabled"):
        auth.check_login(con, "rita", "reviewer pass")
    assert auth.check_login(con, "rita", "wrong") is None  # says nothing without the password
    auth.set_disabled(con, ADA, "rita", False)
    assert auth.check_login(con, "rita", "reviewer pass")["name"] == "rita"
    assert auth.session_user(con, cookie) is None  # an ended session stays ended


# --- sessions ------------------------------------------------------------------------------------


def test_sessions_expire_when_idle_and_at_their_end(admin_con, monkeypatch):
    monkeypatch.setenv("TUNELOOP_SESSION_IDLE_HOURS", "1")
    monkeypatch.setenv("TUNELOOP_SESSION_DAYS", "1")
    con, hour = admin_con, 3600
    cookie = auth.start_session(con, "rita", now=T0)
    assert auth.session_user(con, cookie, now=T0 + 0.9 * hour)["name"] == "rita"  # touches it
    assert auth.session_user(con, cookie, now=T0 + 1.8 * hour)["name"] == "rita"
    assert auth.session_user(con, cookie, now=T0 + 2.9 * hour) is None  # idle > 1 h
    busy = auth.start_session(con, "rita", now=T0)
    for h in range(1, 24):
        assert auth.session_user(con, busy, now=T0 + h * hour) is not None
    assert auth.session_user(con, busy, now=T0 + 24 * hour) is None  # the absolute end
    tampered = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    assert auth.session_user(con, tampered, now=T0) is None
    assert auth.session_user(con, "not a cookie") is None and auth.session_user(con, None) is None


def test_log_out_everywhere_revokes_other_sessions(admin_con):
    con = admin_con
    laptop, phone = auth.start_session(con, "rita"), auth.start_session(con, "rita")
    other = auth.start_session(con, "ada")
    assert auth.open_sessions(con, "rita", laptop)["this session"].tolist() in (
        [True, False],
        [False, True],
    )
    assert auth.end_all_sessions(con, "rita") == 2
    assert auth.session_user(con, laptop) is None and auth.session_user(con, phone) is None
    assert auth.session_user(con, other)["name"] == "ada"
    auth.end_session(con, other)
    assert auth.session_user(con, other) is None


def test_password_change_needs_the_current_one_and_ends_other_sessions(admin_con):
    con = admin_con
    here, elsewhere = auth.start_session(con, "rita"), auth.start_session(con, "rita")
    with pytest.raises(AuthProblem, match="current password"):
        auth.change_password(con, "rita", "wrong", "brand new pass", here)
    with pytest.raises(AuthProblem, match="8"):
        auth.change_password(con, "rita", "reviewer pass", "short", here)
    auth.change_password(con, "rita", "reviewer pass", "brand new pass", here)
    assert auth.check_login(con, "rita", "reviewer pass") is None
    assert auth.check_login(con, "rita", "brand new pass")["name"] == "rita"
    assert auth.session_user(con, here)["name"] == "rita"
    assert auth.session_user(con, elsewhere) is None


def test_admin_rules_for_other_accounts(admin_con):
    con = admin_con
    for action in (auth.delete_user, lambda c, a, n: auth.set_disabled(c, a, n, True)):
        with pytest.raises(AuthProblem, match="your own"):
            action(con, ADA, "ada")
    rita = {"name": "rita", "role": "reviewer"}
    with pytest.raises(auth.PermissionDenied):
        auth.set_disabled(con, rita, "ada", True)  # reviewers manage no accounts
    auth.create_user(con, "bob", "admin password", "admin")
    auth.set_disabled(con, ADA, "bob", True)
    with pytest.raises(AuthProblem, match="last admin"):
        auth.delete_user(con, auth.CONSOLE, "ada")  # bob is disabled: ada is the last active one
    cookie = auth.start_session(con, "rita")
    auth.reset_password(con, ADA, "rita", "reset password")
    assert auth.session_user(con, cookie) is None
    cookie = auth.start_session(con, "rita")
    assert auth.log_out_user(con, ADA, "rita") == 1 and auth.session_user(con, cookie) is None
    auth.delete_user(con, ADA, "rita")
    assert users_store.get_user(con, "rita") is None
    with pytest.raises(AuthProblem, match="no user"):
        auth.delete_user(con, ADA, "rita")


def test_every_page_checks_its_own_permission_first():
    """Defence in depth: a page file run by itself (Streamlit does that with files under pages/
    until st.navigation has run) stops unless someone allowed is signed in."""
    for path in sorted((ROOT / "pages").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
                continue
            if isinstance(node, (ast.Expr, ast.Assign)) and _is_literal(node.value):
                continue  # the docstring, constants
            call = node.value if isinstance(node, ast.Expr) else None
            assert isinstance(call, ast.Call), f"{path.name}: {ast.unparse(node)[:60]}"
            assert ast.unparse(call.func) in ("require", "require_login"), path.name
            break


def _is_literal(node) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except ValueError:
        return False


# --- the app, in-process -------------------------------------------------------------------------


def set_up_app(home) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.text_input(key="login_setup_token").input((home / auth.SETUP_TOKEN_FILE).read_text())
    at.text_input(key="login_new_name").input("admin")
    at.text_input(key="login_new_password").input("correct horse")
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_setup_form_refuses_a_wrong_token_then_accepts_the_right_one(home, monkeypatch):
    monkeypatch.setenv("TUNELOOP_SAMPLE", "0")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert not at.dataframe and not at.tabs  # no page ran: only the form
    at.text_input(key="login_setup_token").input("a guess")
    at.text_input(key="login_new_name").input("admin")
    at.text_input(key="login_new_password").input("correct horse")
    at.button[0].click().run()
    assert "Wrong setup token" in at.error[0].value
    assert users_store.count_users(store.connect(db_path())) == 0
    at = set_up_app(home)
    assert at.session_state["user"] == {"name": "admin", "role": "admin"}
    assert not (home / auth.SETUP_TOKEN_FILE).exists()
    con = store.connect(db_path())
    assert con.execute("SELECT username FROM sessions WHERE NOT revoked").fetchall() == [("admin",)]


def test_users_page_shows_the_new_user_and_disables_one(home, monkeypatch):
    monkeypatch.setenv("TUNELOOP_SAMPLE", "0")
    at = set_up_app(home)
    at.switch_page("pages/users.py").run()
    at.text_input(key="users_name").input("rita")
    at.text_input(key="users_password").input("reviewer pass")
    at.button(key="users_add_submit").click().run()
    assert not at.exception, at.exception
    assert "rita" in at.dataframe[0].value["name"].tolist()  # drawn after the action
    assert [t.value for t in at.toast] == ["Added rita (reviewer)."]
    at.selectbox(key="users_pick").set_value("rita").run()
    at.button(key="users_disable").click().run()
    assert not at.exception, at.exception
    assert users_store.get_user(store.connect(db_path()), "rita")["disabled"]
    at.selectbox(key="users_pick").set_value("admin").run()
    at.button(key="users_disable").click().run()
    assert "your own account" in at.error[0].value


def test_log_out_everywhere_ends_another_browser_session(home, monkeypatch):
    monkeypatch.setenv("TUNELOOP_SAMPLE", "0")
    first = set_up_app(home)
    second = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    second.text_input(key="login_name").input("admin")
    second.text_input(key="login_password").input("correct horse")
    second.button[0].click().run()
    assert second.session_state["user"]["name"] == "admin"
    second.switch_page("pages/account.py").run()
    assert not second.exception, second.exception
    assert len(second.dataframe[0].value) == 2  # both sessions are listed
    second.button(key="account_logout_all").click().run()
    assert second.text_input(key="login_name")  # back at the login form
    first.run()
    assert "user" not in first.session_state and first.text_input(key="login_name")


def test_account_page_changes_the_password(home, monkeypatch):
    monkeypatch.setenv("TUNELOOP_SAMPLE", "0")
    at = set_up_app(home)
    at.switch_page("pages/account.py").run()
    at.text_input(key="account_current").input("correct horse")
    at.text_input(key="account_new").input("battery staple")
    at.text_input(key="account_again").input("battery staple")
    at.button(key="account_change").click().run()
    assert not at.exception, at.exception
    assert "Password changed" in at.success[0].value
    con = store.connect(db_path())
    assert auth.check_login(con, "admin", "battery staple")["name"] == "admin"


# --- a real server -------------------------------------------------------------------------------

# /curate first: the first request after a start is the one Streamlit would answer with the bare
# page file, outside the frame (see ui/common.py _run_inside_the_frame).
PAGE_PATHS = ["curate", "", "data", "duplicates", "chat", "label", "review", "blind", "train"]
PAGE_PATHS += ["compare", "users", "home", "account"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("security") / "home"
    proc, url = start_server(home, {"TUNELOOP_SAMPLE": "0"})
    yield url, home
    stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.mark.e2e
def test_browser_gate_setup_reload_and_deep_link(server, browser):
    from playwright.sync_api import expect

    url, home = server
    anonymous = browser.new_page()
    for path in PAGE_PATHS:  # every URL shows the set-up form and nothing else
        anonymous.goto(f"{url}/{path}", timeout=120_000)
        expect(anonymous.get_by_label("Setup token")).to_be_visible(timeout=60_000)
        expect(anonymous.locator("[data-testid=stSidebarNav]")).to_have_count(0)
        expect(anonymous.locator("[data-testid=stSidebarNavLink]")).to_have_count(0)
        expect(anonymous.get_by_text("Traceback")).to_have_count(0)
    anonymous.get_by_label("Setup token").fill("not the token")
    anonymous.get_by_label("Admin user name").fill("admin")
    anonymous.get_by_label("Password (8+ characters)").fill("correct horse")
    anonymous.get_by_role("button", name="Create admin account").click()
    expect(anonymous.get_by_text("Wrong setup token")).to_be_visible(timeout=30_000)
    anonymous.get_by_label("Setup token").fill((home / auth.SETUP_TOKEN_FILE).read_text().strip())
    anonymous.get_by_role("button", name="Create admin account").click()
    logout = anonymous.get_by_role("button", name="Log out admin (admin)")
    expect(logout).to_be_visible(timeout=60_000)  # we landed on /account, where we were
    expect(anonymous.get_by_role("heading", name="My account")).to_be_visible()
    expect(anonymous.get_by_role("button", name="Deploy")).to_have_count(0)  # viewer toolbar
    assert not (home / auth.SETUP_TOKEN_FILE).exists()
    anonymous.reload()  # the session survives a reload and a typed URL
    expect(logout).to_be_visible(timeout=60_000)
    anonymous.goto(f"{url}/curate")
    expect(anonymous.get_by_role("heading", name="Curate")).to_be_visible(timeout=60_000)
    cookie = [c for c in anonymous.context.cookies() if c["name"].startswith("tuneloop_session")]
    assert cookie and cookie[0]["sameSite"] == "Strict"

    fresh = browser.new_context().new_page()  # a deep link asked for before logging in
    fresh.goto(f"{url}/duplicates", timeout=120_000)
    fresh.get_by_label("User name").fill("admin", timeout=60_000)
    fresh.get_by_label("Password", exact=True).fill("correct horse")
    fresh.get_by_role("button", name="Log in").click()
    expect(fresh.get_by_role("heading", name="Duplicates")).to_be_visible(timeout=60_000)
    assert fresh.url.endswith("/duplicates")

    anonymous.get_by_role("button", name="Log out admin (admin)").click()
    expect(anonymous.get_by_label("User name")).to_be_visible(timeout=60_000)
    anonymous.reload()
    expect(anonymous.get_by_label("User name")).to_be_visible(timeout=60_000)
    fresh.reload()  # the other browser's session is its own
    expect(fresh.get_by_role("heading", name="Duplicates")).to_be_visible(timeout=60_000)


def test_https_with_a_self_signed_certificate(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    proc, url = start_server(
        tmp_path / "home",
        {"TUNELOOP_SAMPLE": "0"},
        ["--server.sslCertFile", str(cert), "--server.sslKeyFile", str(key)],
        scheme="https",
    )
    try:
        unverified = ssl._create_unverified_context()
        with urllib.request.urlopen(url + "/_stcore/health", context=unverified) as r:
            assert r.status == 200 and r.read() == b"ok"
        with pytest.raises(OSError):  # plain HTTP is not served on that port
            urllib.request.urlopen(url.replace("https", "http") + "/_stcore/health", timeout=5)
    finally:
        stop_server(proc)
