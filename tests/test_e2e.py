"""A real browser (Playwright driving Debian's headless Chromium) starts the app, creates the admin
account with the setup token, imports a small file through the Data page and finds it in Curate.
Skipped when Chromium is not installed."""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT, write_jsonl

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home, env=None, args=(), scheme="http"):
    """`streamlit run streamlit_app.py` on a free port with its data folder at `home`; returns
    the process and the app's URL once it answers its health check."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
        + ["--server.headless", "true", *args],
        cwd=ROOT,
        env=os.environ | {"TUNELOOP_HOME": str(home)} | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"{scheme}://127.0.0.1:{port}"
    context = ssl._create_unverified_context() if scheme == "https" else None
    for _ in range(120):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1, context=context)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("the app did not start: " + proc.stdout.read().decode()[-2000:])


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def set_up_admin(page, url, home):
    """Create the admin account through the first-visit form, with the console's setup token."""
    page.goto(url, timeout=120_000)
    page.get_by_label("Setup token").wait_for(timeout=120_000)
    page.get_by_label("Setup token").fill((home / "setup-token").read_text().strip())
    page.get_by_label("Admin user name").fill("admin")
    page.get_by_label("Password (8+ characters)").fill("correct horse")
    page.get_by_role("button", name="Create admin account").click()


@pytest.fixture
def server(tmp_path):
    proc, url = start_server(tmp_path / "home")
    yield url
    stop_server(proc)


def test_import_through_the_page_then_find_it_in_curate(server, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    upload = write_jsonl(
        tmp_path / "browser.jsonl",
        [
            {
                "title": "Zanzibar trampoline case",
                "document": "The claimant, a visitor to the "
                "Zanzibar trampoline park, broke an ankle in March 2023 when a spring failed.",
                "summary": "Ankle broken at a trampoline park when a spring failed.",
            }
        ],
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        set_up_admin(page, server, tmp_path / "home")
        nav = page.get_by_role("navigation", name="App pages")
        nav.get_by_role("link", name="Data").click(timeout=120_000)
        page.get_by_text("Upload files").wait_for(timeout=120_000)
        page.locator("input[type=file]").set_input_files(str(upload))
        page.get_by_role("button", name="Import", exact=True).click()
        expect(page.get_by_text("1 new documents")).to_be_visible(timeout=60_000)
        page.get_by_role("link", name="Curate").click()
        page.get_by_label("Search title, summary and document").fill("Zanzibar")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Zanzibar trampoline case")).to_be_visible(
            timeout=60_000
        )
        browser.close()
