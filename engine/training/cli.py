"""The training stage's commands: one-click retrain and hyperparameter sweeps.

Registered by engine/__main__.py: `python -m engine COMMAND --help`.
"""

from __future__ import annotations

import sys

from engine.errors import TuneloopError


def cmd_retrain(con, args):
    from engine.followups import followup_plan
    from engine.scheduler import wait_for
    from engine.training.runs import retrain_latest
    from store import runs as runs_store

    run_id, warnings = retrain_latest(con, followup=followup_plan)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"Training run {run_id} queued.", file=sys.stderr)
    state = wait_for(con, run_id, every_s=2)
    if not runs_store.active_runs(con).empty:
        print(
            "Follow-up evaluations are queued: they run while the app is open, or now with "
            "`python -m engine jobs run`.",
            file=sys.stderr,
        )
    print(f"Run {run_id}: {state.state}" + (f" ({state.reason})" if state.reason else ""))
    if state.state == "failed":
        raise TuneloopError(f"Training run {run_id} failed.")


def _floats(text: str) -> list[float]:
    """Comma-separated numbers; an argparse type, so a bad one is a usage error."""
    return [float(v) for v in text.split(",") if v.strip()]


def cmd_sweep(con, args):
    import time

    from engine.models.registry import ensure_default_model
    from engine.scheduler import tick
    from engine.training.config import PRESETS, TrainConfig
    from engine.training.runs import default_config
    from engine.training.sweeps import SweepSpace, start_sweep, sweep_results, use_best
    from store import sweeps as sweeps_store

    base = default_config(con)
    if args.preset:
        base = TrainConfig.from_dict(base.to_dict() | PRESETS[args.preset])
    space = SweepSpace(
        learning_rates=args.learning_rates,
        epochs=args.epochs,
        lora_ranks=[int(v) for v in args.ranks],
        n_trials=args.trials,
        method=args.method,
        seed=args.seed,
    )
    model = args.base_model or ensure_default_model(con, progress=lambda m: None)
    sweep_id = start_sweep(con, base, model, space)
    print(f"Sweep {sweep_id}: {space.planned_trials()} trials queued one by one.", file=sys.stderr)
    while sweeps_store.get_sweep(con, sweep_id)["state"] == "running":
        tick(con)
        time.sleep(2)
    print(sweep_results(con, sweep_id).to_string(index=False))
    if args.use_best:
        config = use_best(con, sweep_id)
        print(
            f"Next retrain uses learning rate {config.learning_rate:g}, "
            f"{config.epochs:g} epochs, rank {config.lora_r}."
        )


def add_commands(sub):
    from engine.training.config import PRESETS  # light: dataclasses only

    """Add this stage's subcommands to the `python -m engine` parser."""
    p = sub.add_parser("retrain", help="train on the latest accepted data, last good config")
    p.set_defaults(run=cmd_retrain)
    p = sub.add_parser("sweep", help="search learning rate, epochs and LoRA rank; run to the end")
    p.add_argument(
        "--learning-rates", default="1e-4,3e-4,1e-3", type=_floats, help="comma-separated"
    )
    p.add_argument("--epochs", default="1,2", type=_floats, help="comma-separated")
    p.add_argument("--ranks", default="8,16", type=_floats, help="comma-separated LoRA ranks")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--method", default="tpe", choices=["tpe", "grid"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--preset", choices=sorted(PRESETS), help="start from a preset instead of the last good one"
    )
    p.add_argument("--base-model", help="a registered model id (default: the embedded one)")
    p.add_argument("--use-best", action="store_true", help="make the winner the retrain default")
    p.set_defaults(run=cmd_sweep)
