"""Background jobs as run folders: a worker subprocess per run that never opens the database.

A run folder holds `config.json` (the single source of truth for the run), the inputs the
worker reads (exported JSONL), and what the worker writes: `events.jsonl` (one JSON object per
line: progress, metrics, alarms), `status.json` (state and reason) and `worker.log`. The app
starts the worker in its own process group, polls the files, requests a graceful cancel by
creating `cancel`, and after a restart re-attaches to a live worker or marks a dead one failed
with the tail of its log.

Worker side: `RunWriter(run_dir)` appends events, checks `cancel_requested()`, sets the status.

A run folder may be damaged from outside (a full disk, a hand edit). A worker holds an exclusive
`flock` on `worker.lock` for as long as it lives (taken before it starts, inherited by it), so
a second worker never starts on the same folder, and a status that cannot be read is "unknown"
while a worker holds the run, never "queued". Events are checked as they are read
(`event_problem`): a malformed one becomes an `invalid_event` note on its run.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = ("succeeded", "failed", "cancelled")
LOCK = "worker.lock"
# Progress fields every page reads (ui/jobs.py): numbers when present.
PROGRESS_NUMBERS = ("done", "total", "eta_s", "step", "max_new_tokens", "total_steps")


class WorkerBusy(RuntimeError):
    """A worker already holds the run folder."""


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def write_json(path: Path, data):
    """Atomic write: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


class RunWriter:
    """What a worker uses to report: events, status, cancel requests. Under a multi-process
    launcher (accelerate) only the main process writes; every process sees a cancel request."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.silent = int(os.environ.get("RANK", "0")) != 0

    def event(self, kind: str, **fields):
        if self.silent:
            return
        record = {"time": time.time(), "type": kind, **fields}
        line = json.dumps(record, default=str) + "\n"
        path = self.run_dir / "events.jsonl"
        with open(path, "a+b") as f:
            # A worker killed mid-write leaves a torn last line: start on a fresh one, so the
            # torn line stays one bad line instead of corrupting this event too.
            if f.tell() and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
                line = "\n" + line
            f.write(line.encode("utf-8"))

    def progress(self, phase: str, done: int, total: int, eta_s: float | None = None, **fields):
        """The one progress shape every worker writes: what it is doing (`phase`, e.g.
        "generating"), how far (`done` of `total`) and, once it can tell, the seconds left."""
        eta = None if eta_s is None else round(max(0.0, eta_s), 1)
        self.event("progress", phase=phase, done=done, total=total, eta_s=eta, **fields)

    def set_status(self, state: str, reason: str | None = None, **extra):
        if state not in STATES:  # a bug in the caller, never bad input: not a ValueError
            raise RuntimeError(
                f"{state!r} is not a run state: a run is {', '.join(STATES)}; status.json is "
                "left as it was."
            )
        if self.silent:
            return
        status, _ = read_status(self.run_dir)
        status = (status or {}) | {"state": state, **extra}
        status["reason"] = reason
        status["updated"] = time.time()
        write_json(self.run_dir / "status.json", status)

    def cancel_requested(self) -> bool:
        return (self.run_dir / "cancel").exists()


def _finite(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def event_problem(event) -> str | None:
    """What is wrong with an event, None when pages can show it: a JSON object with a type,
    a finite time and, for progress, finite numbers and a text phase."""
    if not isinstance(event, dict):
        return "not a JSON object"
    if not isinstance(event.get("type"), str) or not event["type"]:
        return "no type"
    if "time" in event and not _finite(event["time"]):
        return "its time is not a finite number"
    if event["type"] == "progress":
        for name in PROGRESS_NUMBERS:
            if event.get(name) is not None and not _finite(event[name]):
                return f"progress field {name!r} is not a finite number ({str(event[name])[:40]!r})"
        if not isinstance(event.get("phase", ""), str):
            return "progress phase is not text"
    return None


def events_size(run_dir: str | Path) -> int:
    try:
        return (Path(run_dir) / "events.jsonl").stat().st_size
    except FileNotFoundError:
        return 0


def read_events(run_dir: str | Path, start: int = 0) -> tuple[list[dict], int]:
    """Events from byte offset `start`; returns (events, next offset). Ignores a partial last
    line, which the worker is still writing. An event that `event_problem` refuses comes back
    as {"type": "invalid_event", "problem", "line"}: the run shows it, every page goes on."""
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return [], start
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            event = json.loads(line)
        except ValueError:  # a line torn by a killed worker: skip it, keep the rest
            continue
        if (problem := event_problem(event)) is not None:
            text = line[:200].decode("utf-8", "replace")
            event = {"time": time.time(), "type": "invalid_event", "problem": problem, "line": text}
        events.append(event)
    return events, start + end


def accelerate_launcher(
    n_gpus: int,
    fsdp: bool = False,
    machines: int = 1,
    rank: int = 0,
    main_ip: str | None = None,
    main_port: int = 29500,
) -> list[str] | None:
    """The `accelerate launch` prefix for a worker over n_gpus GPUs per machine (one process per
    GPU, DDP; FSDP with full sharding when asked); None for one GPU or none on one machine.
    Several machines: run the same command on each with its own `rank` (0 = the main machine,
    whose address is `main_ip`, reachable from the others on `main_port`)."""
    if machines < 1 or not 0 <= rank < machines:
        raise ValueError(f"rank must be in [0, {machines}) and machines at least 1.")
    if machines == 1 and n_gpus <= 1:
        return None
    if machines > 1 and not main_ip:
        raise ValueError("Several machines need main_ip: the address of the rank-0 machine.")
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", str(machines)]
    # num_processes counts every process on every machine.
    total = max(n_gpus, 1) * machines
    launcher += ["--num_processes", str(total), "--mixed_precision", "no"]  # the config decides
    if machines > 1:
        launcher += ["--machine_rank", str(rank), "--main_process_ip", main_ip]
        launcher += ["--main_process_port", str(main_port)]
    if fsdp:
        launcher += [
            "--use_fsdp",
            "--fsdp_sharding_strategy",
            "FULL_SHARD",
            "--fsdp_auto_wrap_policy",
            "TRANSFORMER_BASED_WRAP",
            "--fsdp_state_dict_type",
            "FULL_STATE_DICT",
        ]
    else:
        launcher += ["--multi_gpu"]
    return launcher


def worker_command(args: list[str], launcher: list[str] | None = None) -> list[str]:
    """`python -m engine ARGS`, or the same module under a launcher such as accelerate."""
    if launcher:
        return [*launcher, "--module", "engine", *args]
    return [sys.executable, "-m", "engine", *args]


def start_worker(
    run_dir: str | Path,
    args: list[str],
    env: dict | None = None,
    launcher: list[str] | None = None,
) -> int:
    """Start `python -m engine ARGS` (under `launcher` when given) for a run in its own process
    group; return its pid."""
    run_dir = Path(run_dir)
    lock = open(run_dir / LOCK, "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise WorkerBusy(f"A worker already holds {run_dir}.") from None
    try:
        (run_dir / "cancel").unlink(missing_ok=True)  # a resumed run starts without the old one
        with open(run_dir / "worker.log", "ab") as log:
            # The worker inherits the locked file: the lock lives exactly as long as it does.
            proc = subprocess.Popen(
                worker_command(args, launcher),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[2],  # the repository root
                env=(os.environ | (env or {})),
                start_new_session=True,
                pass_fds=(lock.fileno(),),
            )
    finally:
        lock.close()  # ours only; the worker's copy keeps the lock
    RunWriter(run_dir).set_status("running", pid=proc.pid, started=time.time())
    return proc.pid


def worker_holds(run_dir: str | Path) -> bool:
    """Whether a live worker holds the run folder's lock."""
    try:
        lock = open(Path(run_dir) / LOCK, "a")
    except OSError:  # no folder: nobody holds it
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A finished child that nobody waited for is a zombie: dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def log_tail(run_dir: str | Path, lines: int = 20) -> str:
    path = Path(run_dir) / "worker.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class RunState:
    state: str
    reason: str | None
    pid: int | None


def read_status(run_dir: str | Path) -> tuple[dict | None, str | None]:
    """(status, None), or (None, what is wrong) when status.json is missing or unreadable."""
    path = Path(run_dir) / "status.json"
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        return None, "status.json is missing"
    except (OSError, ValueError) as e:
        return None, f"status.json cannot be read ({type(e).__name__})"
    if not isinstance(status, dict) or status.get("state") not in STATES:
        return None, "status.json holds no known state"
    if not isinstance(status.get("pid"), (int, type(None))) or isinstance(status.get("pid"), bool):
        return None, "status.json holds a pid that is not a number"
    if not isinstance(status.get("reason"), (str, type(None))):
        status["reason"] = str(status["reason"])
    return status, None


def poll(run_dir: str | Path) -> RunState:
    """The state of a run the app started. "unknown" while a worker holds the run but its
    status cannot be read (never "queued": that would start a second worker). A run whose
    worker is gone without a final state is marked failed, with its log tail."""
    run_dir = Path(run_dir)
    status, problem = read_status(run_dir)
    held = worker_holds(run_dir)
    if status is None:
        if held:
            return RunState("unknown", f"{problem}; its worker is still running.", None)
        reason = f"The run folder is damaged: {problem}, and no worker holds it."
    else:
        state, pid = status["state"], status.get("pid")
        if state in FINAL or held or pid_alive(pid):
            return RunState(state, status.get("reason"), pid)
        reason = "The worker stopped without finishing."
    reason += " Last lines of its log:\n" + log_tail(run_dir)
    RunWriter(run_dir).set_status("failed", reason)
    return RunState("failed", reason, None if status is None else status.get("pid"))


def request_cancel(run_dir: str | Path, grace_s: float = 0.0):
    """Ask the worker to stop after saving what it has; with grace_s, interrupt it if it has
    not stopped by then."""
    run_dir = Path(run_dir)
    (run_dir / "cancel").touch()
    pid = (read_status(run_dir)[0] or {}).get("pid")
    deadline = time.time() + grace_s
    while grace_s and time.time() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if grace_s and pid_alive(pid):
        os.killpg(pid, signal.SIGTERM)
