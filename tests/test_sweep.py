"""Sweeps and the training queue from the app's side: grid and TPE proposals, trial settings,
a real two-trial sweep of a tiny model through worker subprocesses (registered models, "use
best", no database in the worker), and the multi-GPU launch command."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import scheduler
from engine.data.samples import load_sample_if_empty
from engine.jobs import runfolder
from engine.models.registry import register_base
from engine.training import runs as training_runs
from engine.training import sweeps
from engine.training.config import TrainConfig
from store import registry as reg_store
from store import runs as runs_store
from store import sweeps as sweeps_store


def test_grid_tries_each_point_once_in_a_seeded_order():
    space = sweeps.SweepSpace(
        learning_rates=[1e-4, 1e-3], epochs=[1.0], lora_ranks=[4, 8], n_trials=10, method="grid"
    )
    assert space.planned_trials() == 4
    done = []
    while (params := sweeps.next_params(space, done)) is not None:
        done.append((params, 1.0))
    assert len(done) == 4 and len({tuple(p.values()) for p, _ in done}) == 4
    assert [p for p, _ in done] == space.grid() == sweeps.SweepSpace(**vars(space)).grid()


def test_tpe_stays_in_the_space_and_explores():
    space = sweeps.SweepSpace(learning_rates=[1e-5, 1e-3], epochs=[1.0, 3.0], lora_ranks=[4, 16])
    done = []
    for i in range(6):
        params = sweeps.next_params(space, done)
        assert 1e-5 <= params["learning_rate"] <= 1e-3
        assert params["epochs"] in (1.0, 3.0) and params["lora_r"] in (4, 16)
        # A made-up objective with its minimum near 1e-4; trial 3 failed.
        value = None if i == 2 else abs(params["learning_rate"] - 1e-4) * 1e4
        done.append((params, value))
    assert len({p["learning_rate"] for p, _ in done}) == 6
    assert sweeps.next_params(space, done) == sweeps.next_params(space, done)  # reproducible


def test_bad_spaces_are_refused():
    with pytest.raises(ValueError, match="tpe"):
        sweeps.SweepSpace(method="random")
    with pytest.raises(ValueError, match="positive"):
        sweeps.SweepSpace(learning_rates=[0.0])


def test_a_trial_keeps_the_base_settings_and_the_alpha_to_rank_ratio():
    base = TrainConfig(max_steps=24, lora_r=8, lora_alpha=16, batch_size=2, seed=7)
    config = sweeps.trial_config(base, {"learning_rate": 1e-3, "epochs": 2.0, "lora_r": 32})
    assert (config.learning_rate, config.epochs, config.max_steps) == (1e-3, 2.0, -1)
    assert (config.lora_r, config.lora_alpha, config.batch_size, config.seed) == (32, 64, 2, 7)


@pytest.mark.slow
def test_a_sweep_runs_its_trials_through_the_queue_and_use_best_keeps_the_winner(
    con, home, tiny_model, monkeypatch
):
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # workers log every module they import
    load_sample_if_empty(con)
    register_base(con, "tiny", str(tiny_model))
    base = TrainConfig(
        base_model=str(tiny_model),
        lr_scheduler="constant",
        warmup_ratio=0.0,
        batch_size=8,
        max_length=384,
        max_new_tokens=8,
        eval_every_steps=2,
        rouge_eval_samples=0,
        early_stopping_patience=0,
        train_subset=16,
        eval_samples=4,
    )
    space = sweeps.SweepSpace(
        learning_rates=[1e-4, 3e-2], epochs=[1.0], lora_ranks=[8], n_trials=2, method="grid"
    )
    sweep_id = sweeps.start_sweep(con, base, "tiny", space, {"name": "ada", "role": "admin"})
    deadline = time.time() + 600
    while sweeps_store.get_sweep(con, sweep_id)["state"] == "running":
        assert time.time() < deadline, "the sweep did not finish"
        running = runs_store.list_runs(con, kind="train", states=("running",))
        assert len(running) <= 1  # one training at a time
        scheduler.tick(con)
        time.sleep(0.5)

    results = sweeps.sweep_results(con, sweep_id)
    assert list(results["trial"]) == [1, 2] and set(results["state"]) == {"succeeded"}
    assert sorted(results["learning_rate"]) == [1e-4, 3e-2]
    trials = sweeps_store.sweep_trials(con, sweep_id)
    dataset_versions = {
        runfolder.read_json(Path(d) / "config.json")["dataset_version"] for d in trials["run_dir"]
    }
    assert len(dataset_versions) == 1  # every trial trains on the same frozen data
    for run_dir in trials["run_dir"]:
        log = (Path(run_dir) / "worker.log").read_text()
        imported = {
            line.split("|")[-1].strip()
            for line in log.splitlines()
            if line.startswith("import time")
        }
        assert "trl" in imported and not {"duckdb", "store", "streamlit"} & imported
    models = reg_store.list_models(con)
    assert set(trials["id"]) <= set(models["id"])  # each trial's adapter is registered
    # A trial does not change the retrain default; "use best" does.
    assert training_runs.default_config(con).learning_rate != 3e-2
    best = sweeps.best_trial(con, sweep_id)
    assert best["best val loss"] == results["best val loss"].min()
    chosen = sweeps.use_best(con, sweep_id)
    assert training_runs.default_config(con) == chosen
    assert chosen.learning_rate == best["learning_rate"]


def test_a_sweep_needs_a_validation_split(con, home, tiny_model):
    load_sample_if_empty(con)
    con.execute("UPDATE examples SET split = 'train' WHERE split = 'validation'")
    register_base(con, "tiny", str(tiny_model))
    with pytest.raises(ValueError, match="validation split is empty"):
        sweeps.start_sweep(con, TrainConfig(), "tiny", sweeps.SweepSpace())


@pytest.mark.slow
def test_several_gpus_launch_the_worker_through_accelerate():
    assert runfolder.accelerate_launcher(0) is None and runfolder.accelerate_launcher(1) is None
    assert runfolder.worker_command(["train", "r"]) == [
        sys.executable,
        "-m",
        "engine",
        "train",
        "r",
    ]
    ddp = runfolder.worker_command(["train", "r"], runfolder.accelerate_launcher(4))
    assert ddp[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in ddp and ddp[ddp.index("--num_processes") + 1] == "4"
    assert ddp[-4:] == ["--module", "engine", "train", "r"]
    fsdp = runfolder.worker_command(["train", "r"], runfolder.accelerate_launcher(8, fsdp=True))
    assert "--use_fsdp" in fsdp and "--multi_gpu" not in fsdp
    # accelerate itself accepts every flag we pass (it parses them before launching anything).
    for command in (ddp, fsdp):
        launcher = command[: command.index("--module")]
        help_text = subprocess.run(
            [*launcher[:3], "--help"], capture_output=True, text=True, check=True
        ).stdout
        for flag in (a for a in launcher[3:] if a.startswith("--")):
            assert flag in help_text, flag


def test_only_the_main_process_writes_under_a_launcher(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    writer = runfolder.RunWriter(tmp_path)
    writer.event("progress", step=1)
    writer.set_status("running")
    assert not (tmp_path / "events.jsonl").exists() and not (tmp_path / "status.json").exists()
