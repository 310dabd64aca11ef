"""The highs of the security probe, reproduced as an attacker would (issue 18), against a real
server (`streamlit run streamlit_app.py`) and headless Chromium:

- a page served by another program on another port of 127.0.0.1, opened in the same browser
  as a signed-in admin, can neither read the session cookie nor open the app's WebSocket;
- a raw WebSocket client (no browser, any headers it likes) cannot clear the app's caches nor
  start a background poller per message; one with no or a foreign Origin is refused outright;
- `/_stcore/metrics` answers nobody.

The reviewer's 50 MB Chat upload is in tests/test_security_uploads.py.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser import SIGNED_IN, App, add_users, choose, data_folder, expect, free_port, go_to

pytestmark = pytest.mark.e2e

# What a hostile page on another port tries: read the cookie, then drive the app's socket.
ATTACKER_PAGE = """<!doctype html><title>waiting</title><script>
const out = {cookie: document.cookie};
const ws = new WebSocket("ws://127.0.0.1:%(port)d/_stcore/stream", ["streamlit"]);
const done = (what) => { if (!out.ws) { out.ws = what; document.title = JSON.stringify(out); } };
ws.onopen = () => done("open");
ws.onerror = () => done("refused");
ws.onclose = () => done("refused");
</script>"""


def serve_page(html: str) -> tuple[str, http.server.HTTPServer]:
    """`html` at / of a throw-away HTTP server on another port of 127.0.0.1."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/", server


@pytest.fixture
def app(tmp_path, browser):
    home = tmp_path / "home"
    with data_folder(home) as con:
        add_users(con, {"ada": "admin", "rex": "reviewer"})
    with App(home, browser) as app:
        yield app


def test_a_page_on_another_port_can_neither_read_the_session_nor_drive_the_socket(app):
    page = app.log_in("ada")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies[f"tuneloop_session_{app.port}"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert cookies[f"tuneloop_device_{app.port}"]["httpOnly"]
    assert "tuneloop" not in page.evaluate("document.cookie")  # not even the app's own page

    url, server = serve_page(ATTACKER_PAGE % {"port": app.port})
    try:
        attacker = page.context.new_page()  # same browser, same cookies, another origin
        attacker.goto(url)
        attacker.wait_for_function("document.title !== 'waiting'", timeout=30_000)
        seen = json.loads(attacker.title())
    finally:
        server.shutdown()
    assert "tuneloop" not in seen["cookie"]
    assert seen["ws"] == "refused"

    # The admin's own page still works after the attack, and the store holds no new account.
    page.reload()
    expect(page.get_by_role("button", name="Log out ada (admin)")).to_be_visible()
    with app.store(restart=False) as con:
        names = {r[0] for r in con.execute("SELECT name FROM users").fetchall()}
        assert names == {"ada", "rex"}


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def _socket(url: str, origin: str | None, messages: list[bytes]) -> str:
    """Open the app's WebSocket as a raw client, send `messages`, and say what happened."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    headers = {"Origin": origin} if origin else {}
    try:
        with connect(
            url, subprotocols=["streamlit"], additional_headers=headers, open_timeout=20
        ) as ws:
            for message in messages:
                ws.send(message)
                time.sleep(0.05)
            time.sleep(1)
            return "open"
    except InvalidStatus as e:
        return f"refused {e.response.status_code}"


def test_a_raw_socket_cannot_clear_caches_or_leak_pollers(app):
    from streamlit.proto.BackMsg_pb2 import BackMsg

    page = app.log_in("ada")  # the store is open and its one poller runs
    ws_url = f"ws://127.0.0.1:{app.port}/_stcore/stream"
    assert _socket(ws_url, None, []) == "refused 403"
    assert _socket(ws_url, "http://127.0.0.1:1", []) == "refused 403"

    clear = BackMsg()
    clear.clear_cache = True
    before = _threads(app.proc.pid)
    # A raw client can forge any Origin; what it sends must still change nothing.
    assert _socket(ws_url, app.url, [clear.SerializeToString()] * 30) == "open"
    time.sleep(3)
    assert _threads(app.proc.pid) <= before + 2  # the probe saw +30: one poller per message
    assert "refused a clear_cache message" in app.log_tail(20_000)
    page.reload()
    expect(page.get_by_role("button", name="Log out ada (admin)")).to_be_visible()


def test_the_first_page_after_a_start_is_the_login_form_and_metrics_answer_nobody(app):
    # The probe once got Streamlit's raw list of page files on the first request after a start.
    page = app.browser.new_page()
    page.goto(app.url + "/curate")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("link", name="Curate")).to_have_count(0)
    page.close()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{app.url}/_stcore/metrics", timeout=10)
    assert refused.value.code == 404
    assert urllib.request.urlopen(f"{app.url}/_stcore/health", timeout=10).status == 200


def test_a_disabled_reviewer_s_open_tab_drops_to_the_login_form(app):
    # Medium 6: the sidebar's job list (and every page's live view) is a fragment that reruns
    # on its own; each rerun re-checks the session, so a revoked one cannot act through it.
    rex = app.log_in("rex", "label")
    ada = app.log_in("ada")
    go_to(ada, "Users")
    choose(ada, "Account", "rex")
    ada.get_by_role("button", name="Disable", exact=True).click()
    expect(ada.get_by_role("button", name="Enable", exact=True)).to_be_visible()
    # No reload, no click on rex's page: its next fragment rerun ends it.
    expect(rex.get_by_role("button", name="Log in")).to_be_visible()
    expect(rex.get_by_role("button", name=SIGNED_IN)).to_have_count(0)
    with app.store(restart=False) as con:
        assert con.execute("SELECT disabled FROM users WHERE name = 'rex'").fetchone()[0]
