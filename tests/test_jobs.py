"""Run folders and the worker runner: events, status, dead workers, re-attaching after a restart."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from engine import scheduler
from engine.jobs import runfolder, runqueue
from store import runs as runs_store
from tests.conftest import ROOT


def test_events_are_read_incrementally_and_partial_lines_wait(tmp_path):
    writer = runfolder.RunWriter(tmp_path)
    writer.event("progress", done=1, total=3)
    events, offset = runfolder.read_events(tmp_path)
    assert [e["done"] for e in events] == [1]
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"type": "progress", "done": 2')  # the worker is mid-write
    assert runfolder.read_events(tmp_path, offset) == ([], offset)
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write(', "total": 3}\n')
    events, _ = runfolder.read_events(tmp_path, offset)
    assert events[0]["done"] == 2


def test_an_unknown_run_state_is_refused_even_under_python_O(tmp_path):
    writer = runfolder.RunWriter(tmp_path)
    writer.set_status("running")
    with pytest.raises(RuntimeError, match="'done' is not a run state"):
        writer.set_status("done")
    assert runfolder.read_json(tmp_path / "status.json")["state"] == "running"  # unchanged
    script = (
        "import sys; from engine.jobs.runfolder import RunWriter\n"
        "try:\n    RunWriter(sys.argv[1]).set_status('done')\n"
        "except RuntimeError:\n    sys.exit(3)"
    )
    optimized = subprocess.run([sys.executable, "-O", "-c", script, str(tmp_path)], cwd=ROOT)
    assert optimized.returncode == 3  # a real check, not an assert that -O strips


def test_a_worker_ends_a_failed_run_with_a_reason_for_people_or_the_bug(tmp_path, capsys):
    from engine.jobs.workers import run_job

    def failing(error):
        def job():
            raise error

        return job

    def reason():
        return runfolder.read_json(tmp_path / "status.json")["reason"]

    assert run_job(tmp_path, failing(ValueError("line 3 has no text")), "drafting") == "failed"
    assert reason() == "line 3 has no text"
    assert "error: line 3 has no text" in capsys.readouterr().err
    assert run_job(tmp_path, failing(KeyError("text")), "drafting") == "failed"
    assert reason() == "KeyError: 'text'" and "Traceback" in capsys.readouterr().err  # a bug
    last = []
    oom = failing(RuntimeError("CUDA out of memory"))
    on_failure = lambda writer, why: last.append(why)  # noqa: E731
    assert run_job(tmp_path, oom, "training", "lower batch_size", on_failure) == "failed"
    assert reason() == "Out of memory: lower batch_size. (RuntimeError: CUDA out of memory)"
    assert last == [reason()]
    assert run_job(tmp_path, lambda: "cancelled", "drafting") == "cancelled"
    assert "drafting cancelled in 0 s" in capsys.readouterr().err


@pytest.mark.parametrize(
    "worker", ["engine.labelling.worker", "engine.evaluation.worker", "engine.training.worker"]
)
def test_every_run_folder_worker_refuses_a_missing_folder(worker, tmp_path, capsys):
    import importlib

    assert importlib.import_module(worker).main([str(tmp_path / "nowhere")]) == 1
    assert "is not a run folder" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_a_dead_worker_is_marked_failed_with_its_log(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "print('loading'); raise SystemExit(3)"])
    proc.wait()
    (tmp_path / "worker.log").write_text("loading\nTraceback: out of memory\n")
    runfolder.RunWriter(tmp_path).set_status("running", pid=proc.pid)
    state = runfolder.poll(tmp_path)
    assert state.state == "failed" and "out of memory" in state.reason
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"


def test_cancel_request_is_seen_by_the_worker(tmp_path):
    writer = runfolder.RunWriter(tmp_path)
    assert not writer.cancel_requested()
    runfolder.request_cancel(tmp_path)
    assert writer.cancel_requested()


def test_app_restart_reattaches_live_runs_and_fails_dead_ones(con, home):
    live_id, live_dir = runqueue.new_run(con, "draft", {"x": 1})
    dead_id, dead_dir = runqueue.new_run(con, "draft", {"x": 2})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        runfolder.RunWriter(live_dir).set_status("running", pid=sleeper.pid)
        runfolder.RunWriter(live_dir).event("progress", done=1, total=2)
        runfolder.RunWriter(dead_dir).set_status("running", pid=2**22 + 12345)
        for run_id in (live_id, dead_id):
            runs_store.set_state(con, run_id, "running")
        scheduler.tick(con)  # what the app's poller does when it starts again
        assert runs_store.get_run(con, live_id)["state"] == "running"
        assert runs_store.run_events(con, live_id, "progress")[0]["done"] == 1
        dead = runs_store.get_run(con, dead_id)
        assert dead["state"] == "failed" and "stopped without finishing" in dead["reason"]
    finally:
        sleeper.kill()


def test_a_cut_status_is_unknown_while_its_worker_holds_the_run_and_no_second_one_starts(
    con, home, monkeypatch
):
    """status.json cut to "{" while the worker lives: never read as queued, never restarted."""
    monkeypatch.setattr(
        runfolder,
        "worker_command",
        lambda args, launcher=None: [sys.executable, "-c", "import time; time.sleep(30)"],
    )
    with runqueue.preparing():
        run_id, run_dir = runqueue.new_run(con, "eval", {}, "ada", ["--version"])
    assert runqueue.pump(con) == [run_id]
    first_pid = runfolder.read_status(run_dir)[0]["pid"]
    try:
        (run_dir / "status.json").write_text("{")
        assert runfolder.worker_holds(run_dir)
        assert runfolder.poll(run_dir).state == "unknown"
        scheduler.tick(con)
        scheduler.tick(con)
        assert runs_store.get_run(con, run_id)["state"] == "running"
        with pytest.raises(runfolder.WorkerBusy):
            runfolder.start_worker(run_dir, ["--version"])
        runqueue.launch(con, run_id)  # even asked directly, the live worker is followed
        assert (run_dir / "status.json").read_text() == "{"  # nobody started over it
    finally:
        os.killpg(first_pid, signal.SIGKILL)
    deadline = time.time() + 10
    while runfolder.worker_holds(run_dir) and time.time() < deadline:
        time.sleep(0.1)
    scheduler.tick(con)  # the worker is gone and its status unreadable: failed, with why
    run = runs_store.get_run(con, run_id)
    assert run["state"] == "failed" and "status.json cannot be read" in run["reason"]


def test_a_bad_progress_event_is_a_note_on_its_run_and_pages_still_read_the_rest(tmp_path):
    writer = runfolder.RunWriter(tmp_path)
    writer.progress("generating", 1, 4)
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"time": 2, "type": "progress", "done": "lots", "total": 4}\n')
        f.write('{"time": NaN, "type": "metrics"}\n')
        f.write('{"time": 3, "type": "progress", "done": 1e999, "total": 4}\n')
        f.write("[1, 2]\n")
    writer.progress("generating", 2, 4)
    events, _ = runfolder.read_events(tmp_path)
    assert [e["type"] for e in events] == ["progress"] + ["invalid_event"] * 4 + ["progress"]
    assert "'done' is not a finite number" in events[1]["problem"]
    assert [e["done"] for e in events if e["type"] == "progress"] == [1, 2]


def test_events_cut_below_the_stored_offset_are_read_again_without_duplicates(con, home):
    run_id, run_dir = runqueue.new_run(con, "draft", {})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        writer = runfolder.RunWriter(run_dir)
        writer.set_status("running", pid=sleeper.pid)
        runs_store.set_state(con, run_id, "running")
        for done in (1, 2, 3):
            writer.progress("generating", done, 9)
        runqueue.refresh_run(con, run_id)
        lines = (run_dir / "events.jsonl").read_text().splitlines(keepends=True)
        (run_dir / "events.jsonl").write_text(lines[0])  # cut below the offset
        writer.progress("generating", 4, 9)  # written after the cut
        runqueue.refresh_run(con, run_id)
        done = [e["done"] for e in runs_store.run_events(con, run_id, "progress")]
        assert done == [1, 2, 3, 4]
    finally:
        sleeper.kill()
