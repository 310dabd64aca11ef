"""Training runs from the app's side: freeze data, queue, launch, ingest, register.

`start_training` freezes a new dataset version from the accepted, split examples, writes the run
folder (config.json + train/validation JSONL, never the test split) and queues the run in the
shared job queue (engine/jobs/runqueue.py). The background poller (engine/scheduler.py) ingests its
events and, when it succeeds, `register_if_done` registers its model so Chat, drafting and
evaluation can use it; evaluating it is the coordinator's follow-up (engine/followups.py), whose
plan the caller passes in (`followup=`) for the worker's ETA. `retrain_latest` is the one-click
"retrain with the latest accepted data" with the last good config. Starting runs is for admins
(`engine.auth.check` on the acting user) and goes into the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from engine.audit import record
from engine.auth import CONSOLE, check
from engine.data.export import export_rows
from engine.errors import TuneloopError
from engine.jobs import background, runfolder, runqueue
from engine.models.registry import current_prompt, resolve
from engine.training.config import (
    PRESETS,
    TrainConfig,
    preflight,
    require_quantization_support,
)
from engine.training.data import estimate_training_tokens
from engine.training.eta import PRIOR_RATES, RATES, SHAPE
from engine.training.memory import fit_to_gpu
from store import registry as reg_store
from store import runs as runs_store
from store import splits as splits_store
from store import transaction
from store.splits import get_setting, set_setting

DEFAULT_PRESET = "Quick (CPU demo)"


GOOD_CONFIG = "train.last_good_config"  # setting: {"config": ..., "base_model_id": ...}


def default_config(con) -> TrainConfig:
    """The last good settings (the last succeeded run's, or a sweep's best once chosen), else the
    preset that fits this machine."""
    saved = get_setting(con, GOOD_CONFIG)
    if saved:
        return TrainConfig.from_dict(json.loads(saved)["config"])
    return TrainConfig.from_dict(PRESETS[preset_for_hardware()])


def remember_good_config(con, config: TrainConfig, base_model_id: str):
    set_setting(
        con, GOOD_CONFIG, json.dumps({"config": config.to_dict(), "base_model_id": base_model_id})
    )


def preset_for_hardware() -> str:
    import torch

    return "Standard" if torch.cuda.is_available() else DEFAULT_PRESET


def freeze_for_training(con, note: str) -> tuple[int, int, int]:
    """Freeze the accepted, split examples into a new dataset version: (id, n_train, n_val)."""
    with transaction(con):
        dataset_id = splits_store.freeze_dataset(con, note)
    n_train, n_validation, _ = splits_store.dataset_counts(con, dataset_id)
    if n_train == 0:
        raise TuneloopError(
            "No accepted training examples: accept some and split them (Data page)."
        )
    return dataset_id, n_train, n_validation


def start_training(
    con,
    config: TrainConfig,
    base_model_id: str,
    user: dict | None = CONSOLE,
    note: str = "",
    dataset_id: int | None = None,
    extra: dict | None = None,
    followup: Callable | None = None,
) -> tuple[str, list[str]]:
    """Write the run folder for a frozen dataset version (a new one by default) and queue it.
    `extra` goes into the run's stored config (a sweep's id and trial). `followup(con,
    dataset_id)` says what will run after it (engine/followups.py `followup_plan`), written to
    followup.json for the worker's ETA; None: nothing follows it (a sweep's trials). Returns
    (run id, warnings)."""
    check(user, "train")
    require_quantization_support(config)  # before a dataset version is frozen for nothing
    ref = resolve(con, base_model_id)
    if ref.adapter:
        raise TuneloopError("Train from a base model (or full fine-tune), not from a LoRA adapter.")
    version, instruction = current_prompt(con)
    if dataset_id is None:
        dataset_id, _, _ = freeze_for_training(con, note or "training run")
    rows = splits_store.dataset_rows(con, dataset_id)
    n_train = int((rows["split"] == "train").sum())
    n_val = int((rows["split"] == "validation").sum())
    config.base_model, config.instruction = ref.path, instruction
    config.prompt_version, config.dataset_version = version, dataset_id
    config, fitted = fit_to_gpu(config)  # on a GPU: checkpointing, batch size, to fit its memory
    warnings = preflight(
        config, n_train, n_val, estimate_training_tokens(con, dataset_id, instruction)
    )
    warnings += fitted
    run_config = config.to_dict() | {"base_model_id": base_model_id} | (extra or {})
    with runqueue.preparing():
        run_id, run_dir = runqueue.new_run(
            con,
            "train",
            run_config,
            user["name"],
            ["train", "{run_dir}"],
            launcher=train_launcher(),
        )
        export_rows(rows[rows["split"] != "test"], run_dir, instruction, hf=False)
        (run_dir / "config.json").write_text(config.to_json())  # what the worker reads
        if followup is not None:
            runfolder.write_json(run_dir / "followup.json", followup(con, dataset_id))
        prior = measured_rates(con, run_config)
        if prior:
            runfolder.write_json(run_dir / PRIOR_RATES, prior)
        record(
            con,
            user,
            "train",
            run_id,
            base_model=base_model_id,
            dataset=dataset_id,
            note=note,
            sweep=(extra or {}).get("sweep_id"),
            train=n_train,
            validation=n_val,
        )
        runqueue.pump(con)
    return run_id, warnings


def measured_rates(con, config: dict) -> dict | None:
    """What the newest succeeded training run of the same shape (engine/training/eta.py SHAPE)
    measured per unit of each phase on this install, for the next run's ETA; None when no such
    run has finished here."""
    done = runs_store.list_runs(con, kind="train", states=("succeeded",))
    for run in done.head(10).to_dict("records"):
        old = json.loads(run["config"])
        if all(old.get(k) == config.get(k) for k in SHAPE):
            rates = runfolder.read_json(Path(run["run_dir"]) / RATES)
            if rates:
                return rates
    return None


def retrain_latest(
    con, user: dict | None = CONSOLE, followup: Callable | None = None
) -> tuple[str, list[str]]:
    """One click: split new accepted examples (those already split keep their side), freeze the
    latest accepted data and train with the last good config (`followup` as in
    `start_training`)."""
    from engine.data.split import split_examples
    from engine.models.registry import ensure_default_model

    check(user, "train")
    split_examples(con, user=user)  # incremental, never a reset: new data always reaches training
    saved = get_setting(con, GOOD_CONFIG)
    base = (
        json.loads(saved)["base_model_id"]
        if saved
        else ensure_default_model(con, progress=lambda m: None)
    )
    return start_training(
        con, default_config(con), base, user, "one-click retrain", followup=followup
    )


def _retrain_task(user: dict) -> str:
    return f"retrain:{user['name']}"  # one click being prepared per user


def retrain_in_background(
    con, user: dict | None = CONSOLE, followup: Callable | None = None
) -> dict:
    """One click that returns at once: `retrain_latest` (splitting new examples, which may
    deduplicate them first, and freezing the data) as a background task (engine/jobs/
    background.py: its own cursor; the same click twice is one retrain), so the page is never
    blocked behind a spinner. `retrain_status` says how it is going and, once it has finished,
    returns the run it queued or the reason it could not. Returns the state."""
    check(user, "train")
    return background.start(
        _retrain_task(user), con, lambda cursor, progress: retrain_latest(cursor, user, followup)
    )


def retrain_status(user: dict, forget_finished: bool = False) -> dict | None:
    """The user's retrain being prepared or prepared ({"started", "result": (run id, warnings)
    or None, "error", "thread"}); with `forget_finished`, a finished one is handed out this
    once."""
    if forget_finished and (finished := background.take_finished(_retrain_task(user))):
        return finished
    return background.state(_retrain_task(user))


def train_launcher() -> list[str] | None:
    """`accelerate launch` across every visible GPU when there are several (DDP; FSDP when
    TUNELOOP_FSDP=1, for models that do not fit one GPU); None: plain Python."""
    import os

    import torch

    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return runfolder.accelerate_launcher(n_gpus, fsdp=os.environ.get("TUNELOOP_FSDP") == "1")


def register_if_done(con, run: dict):
    """Register a succeeded run's model (a LoRA adapter on its base, or full weights)."""
    status = runfolder.read_json(Path(run["run_dir"]) / "status.json", {})
    final = Path(run["run_dir"]) / "final"
    if status.get("state") != "succeeded" or not final.exists():
        return
    config = json.loads(run["config"])
    kind = "lora" if config.get("method") == "lora" else "full"
    base_id = config.get("base_model_id") if kind == "lora" else None
    note = f"fine-tuned on dataset v{config.get('dataset_version')}"
    reg_store.register_model(con, run["id"], kind, str(final), base_id, run["id"], note)
    if not config.get("sweep_id"):  # a sweep's trials become the default only by "use best"
        settings = {k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__}
        remember_good_config(con, TrainConfig.from_dict(settings), config.get("base_model_id"))


def drop_unstarted_datasets(con) -> list[int]:
    """Drop the dataset versions frozen for training runs cancelled before they started, when
    nothing else uses them: otherwise a cancelled click leaves a version nobody trained on or
    evaluated, and Compare and the Data page offer it. The poller calls this every tick (one
    small query when there is nothing to drop)."""
    dropped = splits_store.unstarted_datasets(con)
    for dataset_id in dropped:
        with transaction(con):
            splits_store.drop_dataset(con, dataset_id)
    return dropped


def run_metrics(con, run_id: str) -> dict:
    """The run's curves and summary from its ingested events (one query per kind of event,
    so a page polling a long run reads only what it shows)."""
    finished = runs_store.latest_event(con, run_id, "finished")
    return {
        "progress": runs_store.latest_event(con, run_id, "progress"),
        "train": runs_store.run_events(con, run_id, "train"),
        "eval": runs_store.run_events(con, run_id, "eval"),
        "alarm": runs_store.latest_event(con, run_id, "overfitting"),
        "start": runs_store.latest_event(con, run_id, "start"),
        "summary": finished.get("metrics") if finished else None,
    }
