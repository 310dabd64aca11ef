"""The shared job queue and the background poller: one heavy job at a time, cancel of queued
and running runfolder, a per-user drafting limit, torn event lines, progress with phases, and runs
finishing with no page open."""

from __future__ import annotations

import json
import sys
import time

import pytest

from engine import scheduler
from engine.jobs import runfolder, runqueue
from store import runs as runs_store

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


def queue_sleepers(con, n: int) -> list[str]:
    """n queued runs whose worker is a plain sleeping Python process."""
    ids = []
    for _ in range(n):
        with runqueue.preparing():
            run_id, _ = runqueue.new_run(con, "eval", {}, "ada", ["--version"])
        ids.append(run_id)
    return ids


@pytest.fixture
def sleeping_workers(monkeypatch):
    """Workers that sleep instead of running `python -m engine …`."""
    monkeypatch.setattr(runfolder, "worker_command", lambda args, launcher=None: SLEEPER)
    started = []
    real = runfolder.start_worker

    def start(run_dir, args, env=None, launcher=None):
        pid = real(run_dir, args, env, launcher)
        started.append(pid)
        return pid

    monkeypatch.setattr(runfolder, "start_worker", start)
    yield started
    import os
    import signal

    for pid in started:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def states(con, ids):
    return [runs_store.get_run(con, i)["state"] for i in ids]


def test_one_heavy_job_at_a_time_on_a_cpu_and_the_rest_wait_their_turn(
    con, home, sleeping_workers, monkeypatch
):
    monkeypatch.setattr(runqueue, "slots", lambda: 1)
    ids = queue_sleepers(con, 3)
    assert runqueue.pump(con) == [ids[0]]
    assert runqueue.pump(con) == []  # the slot is taken
    assert states(con, ids) == ["running", "queued", "queued"]
    assert [runqueue.queue_position(con, i) for i in ids] == [None, 1, 2]
    runqueue.cancel_run(con, ids[1])  # a queued job is cancelled at once
    assert states(con, ids)[1] == "cancelled"
    assert runqueue.queue_position(con, ids[2]) == 1


def test_two_slots_run_two_jobs(con, home, sleeping_workers, monkeypatch):
    monkeypatch.setattr(runqueue, "slots", lambda: 2)
    ids = queue_sleepers(con, 3)
    runqueue.pump(con)
    assert states(con, ids) == ["running", "running", "queued"]


def test_a_running_job_that_dies_is_failed_with_a_reason_and_the_next_one_starts(
    con, home, sleeping_workers, monkeypatch
):
    import os
    import signal

    monkeypatch.setattr(runqueue, "slots", lambda: 1)
    ids = queue_sleepers(con, 2)
    runqueue.pump(con)
    os.killpg(sleeping_workers[0], signal.SIGKILL)
    deadline = time.time() + 10
    while states(con, ids)[0] == "running" and time.time() < deadline:
        finished = scheduler.tick(con)
        time.sleep(0.2)
    assert states(con, ids) == ["failed", "running"]
    assert "stopped without finishing" in runs_store.get_run(con, ids[0])["reason"]
    assert finished and finished[0]["id"] == ids[0]


def test_the_poller_finishes_jobs_with_no_page_open(con, home, monkeypatch):
    """A worker that writes an event and succeeds: the poller thread alone ingests both."""
    script = (
        "import sys; from engine.jobs.runfolder import RunWriter; w = RunWriter(sys.argv[1]); "
        "w.progress('generating', 1, 1); w.set_status('succeeded')"
    )
    monkeypatch.setattr(
        runfolder,
        "worker_command",
        lambda args, launcher=None: [sys.executable, "-c", script, *args],
    )
    with runqueue.preparing():
        run_id, run_dir = runqueue.new_run(con, "draft", {}, "ada", ["{run_dir}"])
    poller = scheduler.Poller(con, every_s=0.2).start()
    try:
        deadline = time.time() + 20
        while runs_store.get_run(con, run_id)["state"] != "succeeded":
            assert time.time() < deadline, runs_store.get_run(con, run_id)
            time.sleep(0.2)
    finally:
        poller.stop()
    assert runs_store.latest_event(con, run_id, "progress")["phase"] == "generating"
    finished, seen = poller.finished_since(0)
    assert [r["id"] for r in finished] == [run_id] and seen == 1
    assert poller.finished_since(seen) == ([], 1)


def test_a_torn_last_line_is_skipped_and_the_next_event_starts_on_a_fresh_line(tmp_path):
    writer = runfolder.RunWriter(tmp_path)
    writer.event("progress", done=1, total=3)
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"time": 1, "type": "progr')  # the worker was killed mid-write
    events, offset = runfolder.read_events(tmp_path)
    assert [e["done"] for e in events] == [1]  # the torn line is not read yet
    writer.event("progress", done=2, total=3)  # resumed: appends after the torn line
    more, _ = runfolder.read_events(tmp_path, offset)
    assert [e["done"] for e in more] == [2]
    everything, _ = runfolder.read_events(tmp_path)
    assert [e["done"] for e in everything] == [1, 2]


def test_progress_events_carry_a_phase_and_an_eta(tmp_path):
    runfolder.RunWriter(tmp_path).progress("generating", 5, 14, eta_s=-3.0, step=7)
    (event,), _ = runfolder.read_events(tmp_path)
    assert event["phase"] == "generating" and (event["done"], event["total"]) == (5, 14)
    assert event["eta_s"] == 0.0 and event["step"] == 7


def test_a_reviewer_cannot_fill_the_queue_with_drafting_runs(con, home, monkeypatch):
    from engine.labelling import runs as drafting_runs

    monkeypatch.setattr(runqueue, "pump", lambda con: [])  # keep them queued
    con.execute(
        "INSERT INTO documents (id, raw_text, clean_text, source, n_words) VALUES "
        "('d1', 'one text', 'one text', 's', 2), ('d2', 'two text', 'two text', 's', 2)"
    )
    monkeypatch.setattr(drafting_runs, "resolve", lambda con, m: _Ref())
    monkeypatch.setattr(drafting_runs, "current_prompt", lambda con: (1, "Summarize."))
    monkeypatch.setattr(drafting_runs.ordering, "refresh_if_stale", lambda con, embed=None: False)
    first = drafting_runs.start_drafting(con, "m", limit=1, user="rita")
    with pytest.raises(ValueError, match="rita already has 1 drafting run"):
        drafting_runs.start_drafting(con, "m", user="rita")
    second = drafting_runs.start_drafting(con, "m", user="sam")  # another reviewer
    scheduler.tick(con)  # the poller writes both runs' documents, one after the other
    held = {
        json.loads(line)["document_id"]
        for run_id in (first, second)
        for line in (runqueue.runs_dir() / run_id / "documents.jsonl").read_text().splitlines()
    }
    assert held == {"d1", "d2"}  # the second run left out the document the first one holds
    with pytest.raises(ValueError, match="No documents to draft"):
        drafting_runs.start_drafting(con, "m", user="tom")


class _Ref:
    path, adapter = "model-path", None


def test_greedy_output_is_identical_with_the_progress_hook(tiny_model):
    from engine.models import generation

    model, tokenizer = generation.load_model(str(tiny_model))
    settings = generation.GenerationSettings(max_new_tokens=12, batch_size=2)
    docs = ["The claimant fell on a wet floor in a shop.", "A dog bit the postman twice."]
    plain = generation.summarize_batch(model, tokenizer, docs, settings)
    steps = []
    hooked = generation.summarize_batch(
        model, tokenizer, docs, settings, on_step=lambda s: steps.append(s) and False
    )
    assert [r.text for r in hooked] == [r.text for r in plain]
    assert steps and steps[0] == 1
    with pytest.raises(generation.GenerationStopped):  # a cancel between two tokens
        generation.summarize_batch(model, tokenizer, docs, settings, on_step=lambda s: s >= 3)


def test_start_drafting_queues_at_once_and_the_poller_ranks_and_starts_it(
    con, home, sleeping_workers, monkeypatch
):
    """The slow part of starting (ranking, which embeds every document) runs in the poller,
    never in the click: start_drafting returns with the run queued, nothing ranked, no worker."""
    from engine.labelling import runs as drafting_runs
    from engine.models import generation

    monkeypatch.setattr(runqueue, "slots", lambda: 1)
    con.execute(
        "INSERT INTO documents (id, raw_text, clean_text, source, n_words) VALUES "
        "('d1', 'one text', 'one text', 's', 2), ('d2', 'two text', 'two text', 's', 2)"
    )
    monkeypatch.setattr(drafting_runs, "resolve", lambda con, m: _Ref())
    monkeypatch.setattr(drafting_runs, "current_prompt", lambda con: (1, "Summarize."))
    ranked = []
    monkeypatch.setattr(
        drafting_runs.ordering, "refresh_if_stale", lambda con, embed=None: ranked.append(1)
    )
    monkeypatch.setattr(generation, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    run_id = drafting_runs.start_drafting(con, "m", user="rita")
    run_dir = runqueue.runs_dir() / run_id
    assert ranked == [] and sleeping_workers == []
    assert runs_store.get_run(con, run_id)["state"] == "queued"
    assert runqueue.pump(con) == [] and not (run_dir / "documents.jsonl").exists()
    scheduler.tick(con)
    assert ranked == [1] and len(sleeping_workers) == 1
    assert runs_store.get_run(con, run_id)["state"] == "running"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["n_documents"] == 2 and "limit" not in config
    assert len((run_dir / "documents.jsonl").read_text().splitlines()) == 2


def test_a_run_with_nothing_left_to_draft_when_prepared_fails_with_why(con, home, monkeypatch):
    from engine.labelling import runs as drafting_runs

    con.execute(
        "INSERT INTO documents (id, raw_text, clean_text, source, n_words) VALUES "
        "('d1', 'one text', 'one text', 's', 2)"
    )
    monkeypatch.setattr(drafting_runs, "resolve", lambda con, m: _Ref())
    monkeypatch.setattr(drafting_runs, "current_prompt", lambda con: (1, "Summarize."))
    monkeypatch.setattr(drafting_runs.ordering, "refresh_if_stale", lambda con, embed=None: False)
    run_id = drafting_runs.start_drafting(con, "m", user="rita")
    con.execute(  # drafted meanwhile, by another way in
        "INSERT INTO drafts (document_id, summary, model_id, prompt_version, run_id, "
        "n_generated_tokens, truncated) VALUES ('d1', 'A text.', 'm', 1, 'cli', 2, false)"
    )
    scheduler.tick(con)
    run = runs_store.get_run(con, run_id)
    assert run["state"] == "failed" and "No documents to draft" in run["reason"]
