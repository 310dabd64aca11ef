"""Time to value: one click on Retrain until Compare is ready, by phase, through the engine.

    python bench/loop.py [--clicks 2] [--label "after"] [--out bench/results/loop-cpu.txt]
    python bench/loop.py --home DATA_FOLDER     (report a finished bench's runs again)

No browser: the same functions the Retrain button and the background poller call
(`engine.training.runs.retrain_latest`, then `engine.scheduler.tick` every second, as
`python -m engine jobs run` does), in a fresh temporary TUNELOOP_HOME loaded with the sample set
and the preset that fits the machine (the CPU demo preset without a GPU). The converted default
model is shared (TUNELOOP_MODELS, as the tests do) so its one-time conversion is not timed.

Phases come from the runs' own events (engine/training/worker.py, engine/evaluation/worker.py):
the click itself (split, freeze, queue), each run's queue wait and worker start, model load,
baseline validation, training steps, validation rounds, and per evaluation its model load,
generation and scoring. "Compare ready" is when `ready_pair` finds both models' finished
evaluations on the dataset version the run trained on, as the Compare page asks.

With --clicks 2 the second Retrain follows the first on the same install (no new data): what
a user sees on every click after the first, when the production model's evaluation of the same
test split can be reused.

ETA: every progress event of the click's runs is set against the time that was really left:
`loop_eta_s` (the training worker's time until Compare is ready) against Compare ready, and
`eta_s` (the run's own) against the run's last event; the worst relative error once 10% of the
loop's time has passed is printed for each. Results are appended to --out with the load average
before and after each click.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_timeline(run: dict) -> list[dict]:
    """Events of one run folder, oldest first (the files, so nothing depends on ingest order)."""
    from engine.jobs import runfolder

    events, _ = runfolder.read_events(run["run_dir"])
    return sorted(events, key=lambda e: e["time"])


def first(events: list[dict], kind: str, phase: str | None = None) -> dict | None:
    return next(
        (e for e in events if e["type"] == kind and (phase is None or e.get("phase") == phase)),
        None,
    )


def phases_of(run: dict, created: float) -> list[tuple[str, float]]:
    """(phase, seconds) of one run from its status and events (the worker's own clocks)."""
    from engine.jobs import runfolder

    status = runfolder.read_json(Path(run["run_dir"]) / "status.json", {})
    events = run_timeline(run)
    started = status.get("started") or (events[0]["time"] if events else created)
    end = max((e["time"] for e in events), default=started)
    name = f"{run['kind']} {run['id'][-6:]}"
    if json.loads(run["config"]).get("reused_from"):
        return [(f"{name}: reused an identical earlier evaluation (no worker)", 0.0)]
    out = [(f"{name}: queue wait", started - created)]
    loading = first(events, "progress", "loading model")
    if loading:
        out.append((f"{name}: worker start (imports)", loading["time"] - started))
    if run["kind"] == "train":
        begun, base = first(events, "start"), first(events, "eval")
        finished = first(events, "finished") or {}
        metrics = finished.get("metrics") or {}
        if loading and begun:
            out.append((f"{name}: model load, data, trainer", begun["time"] - loading["time"]))
        rounds = [e for e in events if e["type"] == "eval"]
        if begun and base and base.get("step") == 0:
            out.append((f"{name}: baseline validation", base["time"] - begun["time"]))
            rounds = rounds[1:]
        steps = metrics.get("train_seconds") or 0.0
        out.append((f"{name}: {metrics.get('steps')} training steps", steps))
        for e in rounds:
            out.append((f"{name}: validation round at step {e['step']}", e["seconds"]))
        rest = end - (base or begun or {"time": end})["time"] - steps
        rest -= sum(e["seconds"] for e in rounds)
        out.append((f"{name}: checkpoints, logging, final save", rest))
    else:
        loaded, scoring = first(events, "model_loaded"), first(events, "progress", "scoring")
        if loading and loaded:
            out.append((f"{name}: model load", loaded["time"] - loading["time"]))
        if loaded and scoring:
            out.append((f"{name}: generation", scoring["time"] - loaded["time"]))
        if scoring:
            out.append((f"{name}: scoring (embedder load included)", end - scoring["time"]))
    return out


def eta_points(runs: list[dict], t_click: float, t_ready: float) -> dict[str, list[tuple]]:
    """For every progress event with an ETA: (seconds since the click, relative error, shown,
    actual), for the loop ETA (`loop_eta_s`, against Compare ready) and for the run's own ETA
    (`eta_s`, against the run's last event)."""
    points = {"loop": [], "run": []}
    for run in runs:
        if json.loads(run["config"]).get("reused_from"):
            continue  # its folder is the earlier evaluation's: those events are not this click's
        events = run_timeline(run)
        run_end = max((e["time"] for e in events), default=t_ready)
        for e in events:
            if e["type"] != "progress":
                continue
            for key, field, end in (("loop", "loop_eta_s", t_ready), ("run", "eta_s", run_end)):
                shown, actual = e.get(field), end - e["time"]
                if shown is not None and actual > 1:
                    points[key].append(
                        (e["time"] - t_click, (shown - actual) / actual, shown, actual)
                    )
    return {k: sorted(v) for k, v in points.items()}


def eta_lines(points: list[tuple], total: float, what: str) -> list[str]:
    lines = []
    for t, err, shown, actual in points[:: max(1, len(points) // 10)]:
        lines.append(
            f"  {what} ETA at {t:5.0f} s: shown {shown:5.0f} s, actual {actual:5.0f} s ({err:+.0%})"
        )
    late = [p for p in points if p[0] >= 0.1 * total]
    if not late:
        return lines + [f"  {what} ETA: none shown after 10% of the loop"]
    worst = max(late, key=lambda p: abs(p[1]))
    lines.append(
        f"  worst {what} ETA error after 10% of the loop: {worst[1]:+.0%} at {worst[0]:.0f} s "
        f"(shown {worst[2]:.0f} s, actual {worst[3]:.0f} s; {len(late)} progress events)"
    )
    return lines


def report(con, run_id: str, t_click: float, t_returned: float, t_ready: float, pair=None):
    """The phases of one click's runs (those created after it), the total and the ETAs."""
    from store import runs as runs_store

    total = t_ready - t_click
    runs = [
        r
        for r in runs_store.list_runs(con).to_dict("records")[::-1]
        if t_click - 1 <= r["created_at"].timestamp() <= t_ready
    ]
    rows = [("click: split, freeze, write the run folder, queue", t_returned - t_click)]
    for run in runs:
        created = t_returned if run["id"] == run_id else run["created_at"].timestamp()
        rows += phases_of(run, created)
    config = json.loads(runs_store.get_run(con, run_id)["config"])
    lines = [
        f"preset: {config.get('max_steps')} steps, batch {config.get('batch_size')}, eval every "
        f"{config.get('eval_every_steps')}, {config.get('rouge_eval_samples')} validation "
        f"summaries{' (last round only)' if config.get('rouge_last_eval_only') else ''}; dataset "
        f"v{config['dataset_version']}; evaluations {pair}",
    ]
    lines += [f"{seconds:8.1f} s  {name}" for name, seconds in rows]
    lines.append(f"{total:8.1f} s  TOTAL click -> Compare ready")
    points = eta_points(runs, t_click, t_ready)
    lines += eta_lines(points["loop"], total, "loop")
    lines += eta_lines(points["run"], total, "run")
    return lines


def one_click(con, timeout: float) -> tuple[list[str], dict]:
    """Click Retrain, tick as the poller does until Compare is ready; (report lines, times)."""
    from engine.evaluation.runs import ready_pair
    from engine.followups import followup_plan
    from engine.models.registry import production_model
    from engine.scheduler import tick
    from engine.training.runs import retrain_latest
    from store import runs as runs_store

    t_click = time.time()
    run_id, _ = retrain_latest(con, followup=followup_plan)
    t_returned = time.time()
    config = json.loads(runs_store.get_run(con, run_id)["config"])
    dataset_id, base = config["dataset_version"], production_model(con)
    print(f"clicked: {run_id} on dataset v{dataset_id} in {t_returned - t_click:.1f} s", flush=True)
    pair = None
    while time.time() - t_click < timeout:
        for done in tick(con):
            print(f"  {time.time() - t_click:6.0f} s  {done['id']} {done['state']}", flush=True)
            if done["state"] != "succeeded":
                print(f"    reason: {done['reason']}", flush=True)
        if runs_store.active_runs(con).empty:
            pair = ready_pair(con, dataset_id, base, run_id)
            break
        time.sleep(1.0)
    if pair is None:
        raise SystemExit("The loop ended without a comparison.")
    times = dict(run_id=run_id, t_click=t_click, t_returned=t_returned, t_ready=time.time())
    return report(con, **times, pair=pair), times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "loop-cpu.txt")
    parser.add_argument("--label", default="", help="what this measurement is (before/after)")
    parser.add_argument("--clicks", type=int, default=1, help="retrains one after the other")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--home", type=Path, help="report a finished bench's data folder again")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="tuneloop-loop-"))
    os.environ["TUNELOOP_HOME"] = str(home)
    os.environ.setdefault("TUNELOOP_MODELS", str(ROOT / ".test-models"))
    import store
    from engine.data.samples import load_sample_if_empty
    from engine.models.registry import ensure_default_model
    from engine.paths import db_path

    con = store.connect(db_path())
    lines = [f"# {args.label or 'loop'}: {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores"]
    if args.home:  # the times the bench kept, with today's reading of the events
        for n, times in enumerate(json.loads((home / "loop.json").read_text()), 1):
            lines += [f"## click {n}", *report(con, **times)]
    else:
        load_sample_if_empty(con)
        ensure_default_model(con, progress=print)
        kept = []
        for n in range(1, args.clicks + 1):
            before = load_average()
            click_lines, times = one_click(con, args.timeout)
            kept.append(times | {"pair": None})
            lines += [f"## click {n}: load average before {before}, after {load_average()}"]
            lines += click_lines
            (home / "loop.json").write_text(json.dumps(kept))
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
