"""Hyperparameter sweeps: try learning rate, epochs and LoRA rank systematically, one training
run at a time through the training queue, with the best validation loss as the objective.

    sweep_id = start_sweep(con, base_config, "smollm2-135m-instruct", SweepSpace(n_trials=6))
    ...                                     # the app calls advance_sweeps as trials finish
    sweep_results(con, sweep_id)            # one row per trial
    use_best(con, sweep_id)                 # the best trial's settings become the default

All trials train on one frozen dataset version, so their losses compare. "grid" tries the
product of the listed values in a seeded order; "tpe" is Optuna's TPE sampler (learning rate
log-uniform between the smallest and largest listed, epochs and rank from the lists). The study
is rebuilt from the finished trials in the store each time a trial is asked for, so a sweep
survives an app restart and needs no Optuna storage of its own. Starting, cancelling and using a
sweep is for admins (`engine.auth.check` on the acting user) and goes into the audit log; its
later trials are queued on behalf of whoever started it.
"""

from __future__ import annotations

import itertools
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass, field

import pandas as pd

from engine.audit import record
from engine.auth import CONSOLE, check, on_behalf_of
from engine.errors import TuneloopError
from engine.jobs import runqueue
from engine.training.config import TrainConfig
from engine.training.runs import (
    freeze_for_training,
    remember_good_config,
    run_metrics,
    start_training,
)
from store import runs as runs_store
from store import sweeps as sweeps_store
from store import transaction

OBJECTIVE = "best_eval_loss"  # lower is better


@dataclass
class SweepSpace:
    learning_rates: list[float] = field(default_factory=lambda: [1e-4, 3e-4, 1e-3])
    epochs: list[float] = field(default_factory=lambda: [1.0, 2.0])
    lora_ranks: list[int] = field(default_factory=lambda: [8, 16])
    n_trials: int = 6
    method: str = "tpe"  # "tpe" (Optuna) or "grid"
    seed: int = 0

    def __post_init__(self):
        if self.method not in ("tpe", "grid"):
            raise TuneloopError("The sweep method must be 'tpe' or 'grid'.")
        if not (self.learning_rates and self.epochs and self.lora_ranks):
            raise TuneloopError("Give at least one learning rate, one epoch count and one rank.")
        if min(self.learning_rates) <= 0 or min(self.epochs) <= 0 or min(self.lora_ranks) < 1:
            raise TuneloopError("Learning rates, epochs and ranks must be positive.")
        if self.n_trials < 1:
            raise TuneloopError("A sweep needs at least one trial.")

    def grid(self) -> list[dict]:
        points = [
            {"learning_rate": lr, "epochs": e, "lora_r": r}
            for lr, e, r in itertools.product(self.learning_rates, self.epochs, self.lora_ranks)
        ]
        random.Random(self.seed).shuffle(points)
        return points

    def planned_trials(self) -> int:
        return min(self.n_trials, len(self.grid())) if self.method == "grid" else self.n_trials


def trial_config(base: TrainConfig, params: dict) -> TrainConfig:
    """The base settings with a trial's values; LoRA alpha keeps the base's alpha/rank ratio, and
    epochs decide the length (max_steps off)."""
    scale = base.lora_alpha / base.lora_r
    return TrainConfig.from_dict(
        base.to_dict()
        | {
            "learning_rate": float(params["learning_rate"]),
            "epochs": float(params["epochs"]),
            "max_steps": -1,
            "lora_r": int(params["lora_r"]),
            "lora_alpha": max(1, round(int(params["lora_r"]) * scale)),
        }
    )


def _distributions(space: SweepSpace) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    low, high = min(space.learning_rates), max(space.learning_rates)
    lr = FloatDistribution(low, high, log=True) if low < high else CategoricalDistribution([low])
    return {
        "learning_rate": lr,
        "epochs": CategoricalDistribution(sorted(set(space.epochs))),
        "lora_r": CategoricalDistribution(sorted(set(space.lora_ranks))),
    }


def next_params(space: SweepSpace, done: list[tuple[dict, float | None]]) -> dict | None:
    """The next trial's values given the finished trials ((params, objective or None when the
    trial failed)); None when a grid is exhausted."""
    if space.method == "grid":
        tried = [p for p, _ in done]
        return next((p for p in space.grid() if p not in tried), None)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = _distributions(space)
    # A fresh seed per trial: the rebuilt study's sampler would otherwise repeat its first draw.
    sampler = optuna.samplers.TPESampler(seed=space.seed + len(done), n_startup_trials=3)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    for params, value in done:
        if not all(_within(d, params.get(k)) for k, d in distributions.items()):
            continue  # a value outside the current space (the space was changed)
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=value,
                state=(
                    optuna.trial.TrialState.COMPLETE
                    if value is not None
                    else optuna.trial.TrialState.FAIL
                ),
            )
        )
    return study.ask(distributions).params


def _within(distribution, value) -> bool:
    if hasattr(distribution, "choices"):
        return value in distribution.choices
    return value is not None and distribution.low <= value <= distribution.high


def start_sweep(
    con, base: TrainConfig, base_model_id: str, space: SweepSpace, user: dict | None = CONSOLE
) -> str:
    """Freeze the data once, record the sweep and queue its first trial; returns the sweep id."""
    check(user, "train")
    if base.method != "lora" and len(set(space.lora_ranks)) > 1:
        raise TuneloopError(
            "LoRA ranks only apply to LoRA runs: list one rank for full fine-tuning."
        )
    dataset_id, n_train, n_validation = freeze_for_training(con, "sweep")
    if n_validation == 0:
        raise TuneloopError(
            "A sweep compares validation losses, and the validation split is empty: split some "
            "examples into validation (Data page)."
        )
    sweep_id = f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    with transaction(con):
        sweeps_store.add_sweep(
            con, sweep_id, base_model_id, dataset_id, base.to_dict(), asdict(space), user["name"]
        )
        record(
            con,
            user,
            "sweep",
            sweep_id,
            base_model=base_model_id,
            dataset=dataset_id,
            space=asdict(space),
            planned_trials=space.planned_trials(),
        )
    advance_sweep(con, sweep_id)
    return sweep_id


def _space(sweep: dict) -> SweepSpace:
    return SweepSpace(**json.loads(sweep["space"]))


def _finished(con, trials: pd.DataFrame) -> list[tuple[dict, float | None]]:
    done = []
    for run_id, state, config in trials[["id", "state", "config"]].values:
        if state in ("queued", "running"):
            continue
        summary = run_metrics(con, run_id)["summary"] or {}
        value = summary.get(OBJECTIVE) if state == "succeeded" else None
        done.append((json.loads(config)["sweep_params"], value))
    return done


def advance_sweep(con, sweep_id: str) -> str | None:
    """Queue the sweep's next trial when none is pending; mark it done after the last one.
    Returns the queued run's id, if any."""
    sweep = sweeps_store.get_sweep(con, sweep_id)
    if sweep is None or sweep["state"] != "running":
        return None
    trials = sweeps_store.sweep_trials(con, sweep_id)
    if trials["state"].isin(["queued", "running"]).any():
        return None
    space = _space(sweep)
    params = (
        next_params(space, _finished(con, trials)) if len(trials) < space.planned_trials() else None
    )
    if params is None:
        sweeps_store.set_sweep_state(con, sweep_id, "done")
        return None
    config = trial_config(TrainConfig.from_dict(json.loads(sweep["base_config"])), params)
    run_id, _ = start_training(
        con,
        config,
        sweep["base_model_id"],
        on_behalf_of(sweep["created_by"]),  # checked when the sweep started
        note=f"{sweep_id} trial {len(trials) + 1}",
        dataset_id=int(sweep["dataset_id"]),
        extra={"sweep_id": sweep_id, "trial": len(trials) + 1, "sweep_params": params},
    )
    return run_id


def advance_sweeps(con):
    for sweep_id in sweeps_store.list_sweeps(con, states=("running",))["id"]:
        advance_sweep(con, sweep_id)


def cancel_sweep(con, sweep_id: str, user: dict | None = CONSOLE):
    """Stop the sweep: no more trials, the pending one cancelled."""
    check(user, "train")
    sweeps_store.set_sweep_state(con, sweep_id, "cancelled")
    record(con, user, "cancel_sweep", sweep_id)
    trials = sweeps_store.sweep_trials(con, sweep_id)
    for run_id, state in trials[["id", "state"]].values:
        if state == "running":
            runqueue.cancel_run(con, run_id, user)
        elif state == "queued":
            runs_store.set_state(con, run_id, "cancelled", "The sweep was cancelled.")


def sweep_results(con, sweep_id: str) -> pd.DataFrame:
    """One row per trial: its values, state and validation figures."""
    rows = []
    for r in sweeps_store.sweep_trials(con, sweep_id).itertuples():
        config = json.loads(r.config)
        summary = run_metrics(con, r.id)["summary"] or {}
        rows.append(
            {
                "trial": config["trial"],
                "run": r.id,
                "state": r.state,
                **config["sweep_params"],
                "best val loss": summary.get(OBJECTIVE),
                "best ROUGE-L": summary.get("best_rouge_l"),
                "steps": summary.get("steps"),
                "seconds": summary.get("train_seconds"),
                "overfitting": summary.get("overfitting"),
            }
        )
    return pd.DataFrame(rows)


def best_trial(con, sweep_id: str) -> dict | None:
    results = sweep_results(con, sweep_id)
    if results.empty or results["best val loss"].isna().all():
        return None
    return results.loc[results["best val loss"].idxmin()].to_dict()


def use_best(con, sweep_id: str, user: dict | None = CONSOLE) -> TrainConfig:
    """Make the best trial's settings the default of the next retrain; returns them."""
    check(user, "train")
    best = best_trial(con, sweep_id)
    if best is None:
        raise TuneloopError("No trial of this sweep has finished with a validation loss yet.")
    sweep = sweeps_store.get_sweep(con, sweep_id)
    config = trial_config(TrainConfig.from_dict(json.loads(sweep["base_config"])), best)
    remember_good_config(con, config, sweep["base_model_id"])
    record(con, user, "use_best", sweep_id, trial=int(best["trial"]), run=str(best["run"]))
    return config
