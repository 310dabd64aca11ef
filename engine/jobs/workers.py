"""The entry point every run-folder worker shares: `python -m engine draft-worker|eval-worker|train
RUN_DIR` (engine/labelling/worker.py, engine/evaluation/worker.py, engine/training/worker.py).

`worker_main` parses RUN_DIR (and the worker's own options), refuses a path that is not a
folder, and runs the job under `run_job`, which records how it ended whatever happens: a
readable reason for bad input (ValueError, OSError: printed as `error: …`), the exception's name
for anything else (a bug: its traceback goes to worker.log), with the worker's hint when the
machine ran out of memory. Exit status 1 when the run failed, else 0 (a cancelled run is not a
failure). The model server (engine/serving/worker.py) serves a folder until stopped: no run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from engine.jobs.runfolder import RunWriter

READABLE = (ValueError, OSError)  # bad input or a damaged folder: the message says what to fix


def failure_reason(error: Exception, out_of_memory: str | None = None) -> str:
    """What status.json says about an exception: its message when it is for people, else its
    name and message (the traceback is printed for worker.log)."""
    if isinstance(error, READABLE):
        print(f"error: {error}", file=sys.stderr)
        reason = str(error)
    else:
        sys.stdout.flush()  # the traceback after what the job printed, in worker.log
        traceback.print_exc()
        reason = f"{type(error).__name__}: {error}"
    if out_of_memory and "out of memory" in reason.lower():
        reason = f"Out of memory: {out_of_memory}. ({reason})"
    return reason


def run_job(
    run_dir: str | Path,
    job: Callable[[], str],
    name: str,
    out_of_memory: str | None = None,
    on_failure: Callable[[RunWriter, str], None] | None = None,
) -> str:
    """Run `job()`, which returns the final state (succeeded or cancelled), and record a failure
    in the run's status (after `on_failure(writer, reason)`, e.g. a last event); returns the
    final state, "failed" when it raised."""
    started = time.time()
    try:
        state = job()
    except Exception as e:  # noqa: BLE001 - every failure ends the run with its reason
        reason = failure_reason(e, out_of_memory)
        writer = RunWriter(run_dir)
        if on_failure:
            on_failure(writer, reason)
        writer.set_status("failed", reason)
        return "failed"
    print(f"{name} {state} in {time.time() - started:.0f} s", file=sys.stderr, flush=True)
    return state


def worker_main(
    argv: list[str],
    prog: str,
    description: str,
    run: Callable[[argparse.Namespace], str],
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse `RUN_DIR` (plus `options(parser)`) and call `run(args)`, which returns the final
    state (through `run_job`); 1 when the folder is missing or the run failed, else 0."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("run_dir", type=Path)
    if options:
        options(parser)
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"error: {args.run_dir} is not a run folder.", file=sys.stderr)
        return 1
    return 1 if run(args) == "failed" else 0
