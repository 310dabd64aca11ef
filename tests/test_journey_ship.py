"""Journey through shipping and the feedback loop in a real browser (see tests/test_journeys.py
and tests/browser.py): an admin creates an API key on the Serve page and starts the server; a
client uses the official `openai` library against it; the admin asks Chat for a summary, gives it
👎 and saves a correction as an example; a reviewer works both answers from the feedback queue on
the Review page; the admin stops the server. The store then holds the two reviewed summaries as
accepted examples with their sources (`chat`, `api`), the request log, and the key as a hash.

    .venv/bin/python -m pytest tests/test_journey_ship.py -x -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from engine.models.prompts import build_messages
from engine.serving import runs
from tests.browser import (
    App,
    add_users,
    data_folder,
    expect,
    go_to,
    register_production,
    tick,
    wait_until_idle,
)

pytestmark = pytest.mark.e2e
ADMIN, REVIEWER = "ada", "rita"
SAMPLE_MS = 120_000  # the poller queues API summaries at most once a minute
API_DOCUMENT = (
    "The claimant, a courier for Halvorsen Freight, slipped on an unmarked oil spill in the "
    "loading bay on 2 May 2023 and broke her wrist. The depot manager had logged the leak three "
    "days before and ordered no clean-up. She was off work for eight weeks and claims lost "
    "wages and damages for pain from the depot's owner."
)
CHAT_FIX = "Journey chat fix: a slip on a wet floor; the owner ignored the warning."
API_FIX = "Journey API fix: a courier broke her wrist on oil the depot manager had logged."


def stop_leftover_server(home):
    """Kill a server the journey left running (it runs in its own process group)."""
    state = runs.server_state(home / "serve")
    if state.running and state.pid:
        os.killpg(state.pid, signal.SIGKILL)


def feedback_queue(page):
    """Switch Review to its feedback queue, as a person clicks the radio's label."""
    radio = page.get_by_role("radio", name="Feedback", exact=True)
    expect(radio).to_be_attached()
    wait_until_idle(page)
    page.get_by_text("Feedback", exact=True).click()
    expect(radio).to_be_checked()
    wait_until_idle(page)


def test_serve_a_client_then_review_its_answer_and_a_chat_correction(browser, tmp_path, tiny_model):
    from openai import AuthenticationError, OpenAI

    home = tmp_path / "home"
    with data_folder(home) as con:
        add_users(con, {ADMIN: "admin", REVIEWER: "reviewer"})
        register_production(con, "tiny", tiny_model)
        chat_document = con.execute(
            "SELECT d.clean_text FROM examples e JOIN documents d ON d.id = e.document_id "
            "WHERE e.id = 3"
        ).fetchone()[0]

    try:
        with App(home, browser) as app:
            # Loop health: every opted-in API summary goes to review (the default is 10%).
            page = app.log_in(ADMIN, "loop")
            expect(page.get_by_role("heading", name="Loop health", level=1)).to_be_visible()
            slider = page.get_by_role("slider", name=re.compile(r"^Share of API summaries"))
            slider.focus()
            slider.press("End")
            page.get_by_role("button", name="Save", exact=True).click()
            expect(
                page.get_by_text("100% of opted-in API summaries will be queued.")
            ).to_be_visible()

            # Serve: a key that logs texts, shown once; start the server on a free port.
            go_to(page, "Serve")
            page.get_by_role("textbox", name="Name (who uses it)").fill("intake-bot")
            tick(page, "Log prompts and answers")
            page.get_by_role("button", name="Create key").click()
            expect(page.get_by_text("Key 'intake-bot' created.", exact=False)).to_be_visible()
            key = page.get_by_text(re.compile(r"^tl-[\w-]{40,}$")).inner_text().strip()
            port = page.get_by_role("spinbutton", name="Port")
            port.fill("0")
            port.press("Tab")
            page.get_by_role("button", name="Start", exact=True).click()
            address = page.get_by_text(re.compile(r"^http://127\.0\.0\.1:\d+/v1$"))
            expect(address).to_be_visible(timeout=120_000)
            url = address.inner_text().strip()
            deadline = time.monotonic() + 120
            while (runs.check_health(url.removesuffix("/v1")) or {}).get("status") != "ok":
                assert time.monotonic() < deadline, app.log_tail()
                time.sleep(1)
            app.note(f"serving at {url}")

            # A client with the official library: a wrong key is refused, the real one answers.
            with pytest.raises(AuthenticationError):
                OpenAI(base_url=url, api_key="tl-not-a-key", max_retries=0).models.list()
            client = OpenAI(base_url=url, api_key=key, max_retries=0)
            assert [m.id for m in client.models.list().data] == ["tiny"]
            reply = client.chat.completions.create(
                model="production",
                messages=build_messages(API_DOCUMENT),
                max_tokens=16,
                temperature=0,
            )
            api_answer = reply.choices[0].message.content
            assert reply.usage.completion_tokens > 0
            # The Serve page counts the requests (its figures refresh every 3 s).
            expect(page.get_by_text(re.compile(r"^⚠ [1-9]\d* errors?$")).first).to_be_visible()

            # Chat: summarize a stored example, 👎, correct it and save it as an example.
            go_to(page, "Chat")
            page.get_by_text("Summarize a document").click()
            example = page.get_by_role("spinbutton", name="Example id from the store")
            example.fill("3")
            example.press("Tab")
            page.get_by_role("button", name="Summarize", exact=True).click()
            correct = page.get_by_role("button", name="Correct this")
            expect(correct).to_be_visible()
            wait_until_idle(page)
            page.get_by_role("button", name="thumb_down").or_(
                page.get_by_label("thumbs down", exact=False)
            ).first.click()
            expect(page.get_by_text("Rating saved for review.")).to_be_visible()
            correct.click()
            page.get_by_role("textbox", name="Correct the answer").fill(CHAT_FIX)
            page.get_by_role("button", name="Save as example").first.click()
            expect(page.get_by_text("Proposed as an example: waiting for review.")).to_be_visible()
            expect(page.get_by_text(CHAT_FIX)).to_be_visible()
            app.note("chat feedback given")

            # The reviewer works the feedback queue: the chat answer, then the API one.
            reviewer = app.log_in(REVIEWER, "review")
            feedback_queue(reviewer)
            item = reviewer.get_by_text(re.compile(r"^Feedback \d+ from chat \(ada\) on tiny"))
            expect(item).to_be_visible()
            final = reviewer.get_by_role("textbox", name="Final text")
            expect(final).to_have_value(CHAT_FIX)
            reviewer.get_by_role("radiogroup", name="Feedback rating").get_by_role(
                "radio", name="4 out of 5 stars"
            ).click()
            reviewer.get_by_role("button", name="Accept").click()
            expect(
                reviewer.get_by_text(re.compile(r"^Feedback \d+ accepted as example \d+"))
            ).to_be_visible()
            api_item = reviewer.get_by_text(re.compile(r"^Feedback \d+ from api \(intake-bot\)"))
            deadline = time.monotonic() + SAMPLE_MS / 1000
            while not api_item.is_visible():  # the queue fills as the poller samples the log
                assert time.monotonic() < deadline, reviewer.locator("body").inner_text()
                time.sleep(5)
                reviewer.reload()
                feedback_queue(reviewer)
            expect(final).to_have_value(api_answer)
            final.fill(API_FIX)
            reviewer.get_by_role("button", name="Accept").click()
            expect(
                reviewer.get_by_text(re.compile(r"^Feedback \d+ accepted as example \d+"))
            ).to_be_visible()
            expect(reviewer.get_by_text("No feedback waiting.", exact=False)).to_be_visible()
            app.note("both answers reviewed")

            # The admin stops the server from the Serve page.
            go_to(page, "Serve")
            page.get_by_role("button", name="Stop the server").click()
            expect(page.get_by_role("button", name="Start", exact=True)).to_be_visible()
            assert runs.check_health(url.removesuffix("/v1"), timeout=1) is None

            with app.store(restart=False) as con:
                examples = con.execute(
                    """SELECT e.source, e.summary, e.status, e.origin, e.updated_by, d.clean_text
                       FROM examples e JOIN documents d ON d.id = e.document_id
                       WHERE e.source IN ('chat', 'api') ORDER BY e.id"""
                ).fetchall()
                feedback = con.execute(
                    """SELECT source, rating, corrected, proposed, status, reviewer, created_by,
                              review_rating FROM feedback ORDER BY id"""
                ).fetchall()
                requests = con.execute(
                    "SELECT key_name, path, status, request_text FROM api_requests ORDER BY id"
                ).fetchall()
                stored_keys = con.execute("SELECT * FROM api_keys").fetchdf()
                audit = [r[0] for r in con.execute("SELECT action FROM audit_log").fetchall()]
    finally:
        stop_leftover_server(home)

    assert [e[:5] for e in examples] == [
        ("chat", CHAT_FIX, "accepted", "human-corrected", REVIEWER),
        ("api", API_FIX, "accepted", "human-corrected", REVIEWER),
    ]
    assert examples[0][5] == chat_document  # the stored example's own document
    assert " ".join(examples[1][5].split()) == " ".join(API_DOCUMENT.split())  # a new document
    assert feedback == [
        ("chat", 0, CHAT_FIX, True, "accepted", REVIEWER, ADMIN, 4),
        ("api", None, API_FIX, False, "accepted", REVIEWER, "intake-bot", None),
    ]
    assert (None, "/v1/models", 401, None) in requests
    chat_calls = [r for r in requests if r[1] == "/v1/chat/completions"]
    assert [(r[0], r[2]) for r in chat_calls] == [("intake-bot", 200)]
    assert json.loads(chat_calls[0][3]) == build_messages(API_DOCUMENT)
    assert key not in stored_keys.astype(str).to_string()  # only its hash is kept
    assert stored_keys["log_texts"].tolist() == [True]
    assert {"serve_start", "serve_stop", "feedback_sampling"} <= set(audit)
