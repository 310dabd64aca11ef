"""What a running job costs the app server while people watch it: CPU of the `streamlit run`
process with nobody watching, then with the Train and Compare pages open in a real browser
(headless Chromium, logged in as an admin) while a training run writes events.

    python bench/polling.py [--seconds 60]

The "training run" is a small process that writes what a real worker writes (progress every
second, a training loss every 2 s, a validation event every 10 s) so the app's poller ingests a
live run, without a model competing for the 2 cores. The figure is CPU seconds of the server
process (user + system, from /proc) per wall second: 1.0 is one core busy. Chromium's own CPU is
not counted; it runs in other processes. Results: bench/results/polling-cpu.txt.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAKE_WORKER = """
import sys, time
from engine.jobs.runfolder import RunWriter
w = RunWriter(sys.argv[1]); w.set_status("running", pid=__import__("os").getpid())
step = 0
while True:
    step += 1
    w.progress("training", step, 100000, eta_s=100000 - step, step=step, total_steps=100000)
    if step % 2 == 0:
        w.event("train", step=step, loss=2.0 / step ** 0.1, tokens_per_s=100.0)
    if step % 10 == 0:
        w.event("eval", step=step, eval_loss=2.1 / step ** 0.1, train_loss=2.0, rouge_l=0.2,
                samples=[{"id": 1, "summary": "A summary."}])
    time.sleep(1)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(home: Path) -> subprocess.Popen:
    """A data folder with the sample set, an admin, and a live fake training run."""
    import store
    from engine.auth import create_user
    from engine.data.samples import load_sample_if_empty
    from engine.jobs import runqueue
    from store import runs as runs_store

    os.environ["TUNELOOP_HOME"] = str(home)
    # The embedded model is converted once per models folder; do it before measuring, as any
    # install that has opened Chat or Compare once has.
    os.environ.setdefault("TUNELOOP_MODELS", str(ROOT / ".test-models"))
    from engine.models.embedded import default_model_dir

    default_model_dir()
    con = store.connect(home / "tuneloop.duckdb")
    load_sample_if_empty(con)
    create_user(con, "bench", "bench-password", "admin")
    with runqueue.preparing():
        run_id, run_dir = runqueue.new_run(con, "train", {"method": "lora"}, "bench", ["train"])
    worker = subprocess.Popen(
        [sys.executable, "-c", FAKE_WORKER, str(run_dir)], cwd=ROOT, start_new_session=True
    )
    time.sleep(1)
    runs_store.set_state(con, run_id, "running")
    con.close()
    return worker


def measure(pid: int, seconds: float) -> float:
    start_cpu, start = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    return (cpu_seconds(pid) - start_cpu) / (time.time() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="tuneloop-bench-"))
    worker = prepare(home)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)],
        cwd=ROOT,
        env=os.environ | {"TUNELOOP_HOME": str(home)},  # and TUNELOOP_MODELS, set in prepare
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            context = browser.new_context()
            page = context.new_page()
            page.goto(url, timeout=120_000)
            page.get_by_label("User name").fill("bench", timeout=120_000)
            page.get_by_label("Password", exact=True).fill("bench-password")
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("link", name="Home").wait_for(timeout=120_000)
            for _ in range(100):  # the session cookie is set by the page's script after login
                if any(c["name"].startswith("tuneloop") for c in context.cookies()):
                    break
                time.sleep(0.2)
            page.goto(url)  # Home: one quiet page while the app settles
            try:
                page.get_by_role("link", name="Train").wait_for(timeout=120_000)
            except Exception:
                page.screenshot(path="/tmp/polling-failure.png")
                raise
            time.sleep(10)
            idle = measure(server.pid, args.seconds)  # the poller alone, one quiet page open
            page.goto(url + "/train")
            page.get_by_text("training", exact=False).first.wait_for(timeout=120_000)
            second = context.new_page()
            second.goto(url + "/compare")
            second.get_by_role("heading", name="Compare").wait_for(timeout=120_000)
            time.sleep(10)
            watched = measure(server.pid, args.seconds)
            browser.close()
    finally:
        server.terminate()
        worker.kill()
        server.wait(20)
    load = os.getloadavg()
    print("App server CPU with a live training run (2-core machine)")
    print(f"  load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"  Home page open, nothing polling it:   {idle * 100:5.1f}% of a core")
    print(f"  Train and Compare open (both poll):   {watched * 100:5.1f}% of a core")
    print(f"  measured over {args.seconds:.0f} s each, server pid {server.pid}")


if __name__ == "__main__":
    main()
