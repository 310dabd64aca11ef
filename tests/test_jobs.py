"""Run folders and the worker runner: events, status, dead workers, re-attaching after a restart."""

import json
import subprocess
import sys

from engine import scheduler
from engine.jobs import runfolder, runqueue
from store import runs as runs_store


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
