"""Helpers for the journey tests (tests/test_journeys.py): a real Tuneloop server over a data
folder prepared in the test, headless Chromium logged in through the form as a person would, and
a look into the store between steps.

    with data_folder(home) as con:           # before the server starts: sample set, users, …
        add_users(con, {"ada": "admin"})
    with App(home, browser) as app:          # `streamlit run streamlit_app.py` on a free port
        page = app.log_in("ada")             # a fresh browser context, through the login form
        …click, fill, expect…
        with app.store() as con:             # stop the server, open the DB, assert, restart
            assert …

DuckDB allows one process per file, so the test cannot open the database while the server runs:
`App.store` stops it, yields a connection, closes it and starts the server again on the same
port, then reopens every page at the URL it was on. The login cookie is named after the port,
so it should carry each page's session across the restart; a page that lands on the login form
instead is logged in again, and `App.relogins` counts how often that happened.

Skip the tests when Chromium is missing (`CHROMIUM`). Nothing here is a test.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import store
from engine.auth import create_user
from engine.data.samples import load_sample_if_empty

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"  # every journey user's
START_S = 120  # seconds a server may take to answer its health check (2 busy cores)
RERUN_MS = 60_000  # how long a test waits for a rerun's visible effect (2 busy cores)
SIGNED_IN = re.compile(r"^Log out ")  # the sidebar button every signed-in page shows


def expect(target):
    """Playwright's `expect`, waiting as long as a rerun may take on 2 busy cores."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=RERUN_MS)
    return playwright_expect(target)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the data folder, before the server starts ------------------------------------------------


@contextmanager
def data_folder(home: Path):
    """A connection on `<home>/tuneloop.duckdb` with the sample set loaded (as the app's first
    start would), closed on exit so the server can open the file."""
    con = store.connect(Path(home) / "tuneloop.duckdb")
    try:
        load_sample_if_empty(con)
        yield con
    finally:
        con.close()


def add_users(con, users: dict[str, str]):
    """Accounts (name -> role), all with PASSWORD: no setup token is needed."""
    for name, role in users.items():
        create_user(con, name, PASSWORD, role)


def register_production(con, model_id: str, path: Path):
    """Register a local model folder as a base model and make it the production model."""
    from engine.models.registry import PRODUCTION, register_base
    from store.splits import set_setting

    register_base(con, model_id, str(path))
    set_setting(con, PRODUCTION, model_id)


# --- the server and the browser --------------------------------------------------------------


class App:
    """A Tuneloop server over `home` and the browser pages logged in to it."""

    def __init__(self, home: Path, browser, env: dict | None = None):
        self.home, self.browser = Path(home), browser
        self.env = os.environ | {"TUNELOOP_HOME": str(self.home)} | (env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.home.parent / f"server-{self.port}.log"
        self.proc = None
        self.pages = []  # (page, user name) of every log_in
        self.relogins = 0  # pages that came back from a restart on the login form
        self.began = time.monotonic()

    def note(self, step: str):
        """Print how far into the journey a step ended (pytest shows it when a test fails)."""
        print(f"[{time.monotonic() - self.began:6.1f} s] {step}", flush=True)

    def __enter__(self) -> App:
        self.start()
        return self

    def __exit__(self, *exc):
        for page, _ in self.pages:
            page.context.close()
        self.stop()

    def start(self):
        """`streamlit run streamlit_app.py` on this app's port; returns once it is healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py"]
        command += ["--server.port", str(self.port), "--server.headless", "true"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                urllib.request.urlopen(self.url + "/_stcore/health", timeout=1)
                return
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"the app did not start on {self.url}:\n{self.log_tail()}")

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else "(no log)"

    def log_in(self, name: str, path: str = "", password: str = PASSWORD):
        """A new browser context (its own cookies) on `path`, logged in through the form."""
        page = self.browser.new_context().new_page()
        page.set_default_timeout(RERUN_MS)
        page.goto(f"{self.url}/{path}")
        fill_login(page, name, password)
        expect(page.get_by_role("button", name=SIGNED_IN)).to_be_visible()
        self.pages.append((page, name))
        self.note(f"{name} logged in on /{path}")
        return page

    @contextmanager
    def store(self, restart: bool = True):
        """Stop the server, yield a connection on its database (closed after), then start the
        server again and put every page back where it was, signed in."""
        where = [(page, name, page.url) for page, name in self.pages]
        self.stop()
        self.note("server stopped to read the store")
        con = store.connect(self.home / "tuneloop.duckdb")
        try:
            yield con
        finally:
            con.close()
        if restart:
            self.start()
            for page, name, url in where:
                self._reopen(page, name, url)
            self.note(f"server restarted, pages reopened ({self.relogins} logins lost so far)")

    def _reopen(self, page, name: str, url: str):
        page.goto(url)
        signed_in = page.get_by_role("button", name=SIGNED_IN)
        login = page.get_by_role("button", name="Log in")
        try:
            expect(signed_in.or_(login)).to_be_visible()
        except AssertionError as e:
            raise AssertionError(
                f"after a restart {url} showed neither {name}'s page nor the login form "
                f"(page text: {page.locator('body').inner_text()[:500]!r}); server log:\n"
                f"{self.log_tail(1500)}"
            ) from e
        if not signed_in.is_visible():
            self.relogins += 1
            fill_login(page, name, PASSWORD)
            expect(signed_in).to_be_visible()


def fill_login(page, name: str, password: str):
    """Log in through the form, as a person types it."""
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()


# --- doing what a person does ----------------------------------------------------------------


def go_to(page, link: str, title: str | None = None):
    """Follow a link of the sidebar's navigation and wait for the page's title (`link` unless
    the page is titled otherwise)."""
    nav = page.get_by_role("navigation", name="App pages")
    more = page.get_by_test_id("stSidebarNavViewButton").filter(has_text=re.compile(r"more$"))
    target = nav.get_by_role("link", name=link, exact=True)
    expect(nav.get_by_role("link").first).to_be_visible()
    if not target.is_visible() and more.is_visible():  # a long list is folded
        more.click()
    target.click()
    heading = page.get_by_role("heading", name=title or link, exact=True, level=1)
    expect(heading).to_be_visible()


def sidebar(page):
    return page.get_by_role("region", name="Sidebar")


def choose(page, label: str, option: str):
    """Pick `option` in the select box `label`: type to filter, click the option. A rerun that
    lands meanwhile closes the list; then type again, as a person would."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.get_by_role("combobox", name=label)
    for _ in range(3):
        wait_until_idle(page)
        box.fill("")
        box.press_sequentially(option)  # a fill() alone does not open the list
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            break
        except PlaywrightTimeout:
            continue
    expect(box).to_have_value(option)


def tick(page, label: str):
    """Tick a checkbox by clicking its label (its input sits under the label)."""
    page.get_by_text(label, exact=True).click()
    expect(page.get_by_role("checkbox", name=label)).to_be_checked()


def open_number(page, label: str, value: int):
    """Type a number into a number input and commit it with Enter, as a person does."""
    box = page.get_by_role("spinbutton", name=label)
    box.fill(str(value))
    box.press("Enter")


def wait_until_idle(page, timeout_ms: int = RERUN_MS):
    """Wait until the page's script has finished (the header's Stop button is gone)."""
    expect(page.get_by_role("button", name="Stop")).to_be_hidden(timeout=timeout_ms)
