"""The training worker: config and pre-flight checks, real runs of a tiny random-weight model of
the default architecture (LoRA and full), early stopping with the overfitting alarm, cancel, a
crashing worker, and (slow) a few real steps of the default model on bills."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.jobs import runfolder
from engine.models.prompts import training_record
from engine.training.config import PRESETS, TrainConfig, planned_steps, preflight
from tests.conftest import write_jsonl

INSTRUCTION = "Summarize."  # short prompts keep the tiny runs fast


def make_run(run_dir: Path, config: TrainConfig, train: list, validation: list) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, pairs in (("train", train), ("validation", validation)):
        records = [
            training_record(d, s, config.instruction) | {"id": i} for i, (d, s) in enumerate(pairs)
        ]
        write_jsonl(run_dir / f"{name}.jsonl", records)
    (run_dir / "config.json").write_text(config.to_json())
    return run_dir


def events(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in runfolder.read_events(run_dir)[0] if e["type"] == kind]


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def tiny_config(model: Path, **changes) -> TrainConfig:
    settings = dict(
        base_model=str(model),
        instruction=INSTRUCTION,
        learning_rate=5e-2,
        lora_r=8,
        lora_alpha=64,
        lr_scheduler="constant",
        warmup_ratio=0.0,
        max_steps=12,
        batch_size=4,
        max_length=128,
        eval_every_steps=6,
        rouge_eval_samples=2,
        max_new_tokens=8,
        early_stopping_patience=0,
    )
    return TrainConfig(**(settings | changes))


BILLS = [
    (
        f"Bill {i} renames the post office at {i} Main Street after a local nurse.",
        "The bill renames a post office after a nurse.",
    )
    for i in range(8)
]
WEATHER = [
    (f"Storm {w} hit the coast on Friday.", f"Weather report {w}: rain, wind and cold.")
    for w in ("alpha", "beta", "gamma", "delta")
]


def test_config_round_trips_and_refuses_bad_values():
    config = TrainConfig(method="full", max_steps=10, report_to=["tensorboard"])
    assert TrainConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="qlora")
    with pytest.raises(ValueError, match="max_new_tokens"):
        TrainConfig(max_length=256, max_new_tokens=200)
    with pytest.raises(ValueError, match="Unknown training settings: lr"):
        TrainConfig.from_dict({"lr": 1e-4})
    with pytest.raises(ValueError, match="not valid JSON"):
        TrainConfig.from_json("{")


def test_presets_are_valid_and_the_cpu_demo_is_small():
    configs = {name: TrainConfig.from_dict(preset) for name, preset in PRESETS.items()}
    quick = configs["Quick (CPU demo)"]
    assert quick.method == "lora" and quick.max_length <= 512
    assert planned_steps(quick, 3000) * quick.batch_size * quick.grad_accum <= 64
    assert configs["Thorough"].method == "full"


def test_preflight_warns_about_data_that_does_not_suit_the_settings():
    config = TrainConfig(batch_size=8, grad_accum=2, eval_every_steps=50)
    assert preflight(config, 0, 10)[0].startswith("The training split is empty")
    assert any("validation split is empty" in w for w in preflight(config, 500, 0))
    assert any("fewer than one effective batch" in w for w in preflight(config, 10, 5))
    assert any("before the first evaluation" in w for w in preflight(config, 200, 20))
    many = TrainConfig(max_steps=100, batch_size=4)
    assert any("memorise" in w for w in preflight(many, 20, 5))
    assert preflight(TrainConfig(epochs=3, eval_every_steps=20), 2000, 100) == []


def test_long_documents_are_cut_and_summaries_kept(tiny_model):
    from engine.models.embedded import load_tokenizer
    from engine.training.worker import fit_examples

    tokenizer = load_tokenizer(str(tiny_model))
    config = TrainConfig(instruction=INSTRUCTION, max_length=128, max_new_tokens=16)
    records = [
        training_record("word " * 500, "A short summary.", INSTRUCTION),
        training_record("A short bill.", "Its summary.", INSTRUCTION),
    ]
    examples, documents_cut, summaries_cut = fit_examples(tokenizer, records, config)
    assert (documents_cut, summaries_cut) == (1, 0)
    long, short = examples
    assert long["completion"] == records[0]["completion"] and short == records[1]
    text = tokenizer.apply_chat_template(long["prompt"] + long["completion"], tokenize=False)
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 128
    assert long["prompt"][0]["content"].startswith(INSTRUCTION + "\n\nDocument:\nword word")


def test_the_worker_module_starts_without_heavy_or_database_imports():
    code = (
        "import sys, engine.training.worker; print([m for m in ('torch', 'transformers', 'trl', "
        "'duckdb', 'store', 'streamlit') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        check=True,
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_lora_run_trains_reports_and_saves_an_adapter_that_changes_outputs(tiny_model, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.training.worker import train

    run = make_run(tmp_path / "run", tiny_config(tiny_model), BILLS, WEATHER)
    assert train(run) == "succeeded"

    start = events(run, "start")[0]
    assert start["n_train"] == 8 and start["trainable_params"] < start["total_params"]
    progress = events(run, "progress")
    training = [e for e in progress if e["phase"] == "training"]
    assert training[-1]["step"] == training[-1]["total_steps"] == training[-1]["total"] == 12
    phases = [e["phase"] for e in progress]
    assert phases[0] == "loading model"  # then the base model's validation, then training
    assert phases.index("baseline validation summaries") < phases.index("training")
    losses = [e["loss"] for e in events(run, "train")]
    assert len(losses) >= 6 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05
    evals = events(run, "eval")
    assert [e["step"] for e in evals] == [0, 6, 12]  # the base model first
    assert all(isinstance(e["rouge_l"], float) and len(e["samples"]) == 2 for e in evals)
    final = status(run)
    assert final["state"] == "succeeded" and final["reason"] is None
    metrics = final["metrics"]
    assert metrics["best_eval_loss"] < metrics["base_eval_loss"]
    assert metrics["steps"] == 12 and metrics["train_tokens_per_s"] > 0
    assert not (run / "checkpoints").exists()
    # Once a step is measured every progress event says how long the run has left, and it
    # is what was left, give or take the noise of a run this short.
    timed = [e for e in progress if e["time"] >= training[0]["time"]]
    assert all(e["eta_s"] is not None for e in timed)
    end = events(run, "finished")[0]["time"]
    late = [e for e in timed if end - e["time"] > 2]
    assert all(0.3 * (end - e["time"]) < e["eta_s"] < 3 * (end - e["time"]) for e in late)

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = torch.tensor([[1, 520, 3300, 2]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, run / "final")
        after = tuned(ids).logits
    assert not torch.allclose(before, after)


@pytest.mark.slow
def test_summaries_at_the_last_evaluation_only(tiny_model, tmp_path):
    from engine.training.worker import train

    config = tiny_config(tiny_model, rouge_last_eval_only=True)
    run = make_run(tmp_path / "run", config, BILLS, WEATHER)
    assert train(run) == "succeeded"
    evals = events(run, "eval")
    assert [e["step"] for e in evals] == [0, 6, 12]  # the loss at every round
    assert [e["rouge_l"] is not None for e in evals] == [False, False, True]
    phases = {e["phase"] for e in events(run, "progress")}
    assert "baseline validation summaries" not in phases and "validation summaries" in phases


@pytest.mark.slow
def test_overfitting_raises_the_alarm_and_early_stopping_keeps_the_best(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from engine.training.worker import train

    # Full fine-tuning at a high rate memorises four bills; the weather reports drift away.
    config = tiny_config(
        tiny_model,
        method="full",
        learning_rate=1e-2,
        max_steps=40,
        eval_every_steps=2,
        early_stopping_patience=2,
        rouge_eval_samples=0,
    )
    run = make_run(tmp_path / "run", config, BILLS[:4], WEATHER)
    assert train(run) == "succeeded"

    alarm = events(run, "overfitting")
    assert len(alarm) == 1 and "memorising" in alarm[0]["message"]
    assert status(run)["overfitting"]["step"] == alarm[0]["step"]
    stopped = events(run, "early_stopped")[0]
    assert stopped["step"] < 40
    evals = {e["step"]: e["eval_loss"] for e in events(run, "eval")}
    metrics = status(run)["metrics"]
    assert (
        metrics["best_step"]
        == stopped["best_step"]
        == min((s for s in evals if s > 0), key=evals.get)
    )
    assert metrics["best_eval_loss"] == pytest.approx(min(evals.values()))

    # final/ holds full weights from the best checkpoint: it loads and knows the bills.
    from engine.models.embedded import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    record = training_record(*BILLS[0], INSTRUCTION)
    text = tokenizer.apply_chat_template(record["prompt"] + record["completion"], tokenize=False)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model)(ids, labels=ids).loss
        tuned = AutoModelForCausalLM.from_pretrained(run / "final")(ids, labels=ids).loss
    assert tuned < base - 1


@pytest.mark.slow
def test_cancel_stops_after_the_step_and_keeps_a_usable_adapter(tiny_model, tmp_path):
    import threading

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.training.worker import train

    run = make_run(tmp_path / "run", tiny_config(tiny_model, max_steps=200), BILLS, WEATHER)

    def cancel_after_the_first_step():  # as runfolder.request_cancel does, mid-training
        deadline = time.time() + 120
        while not (run / "events.jsonl").exists() or not [
            e for e in events(run, "progress") if e["phase"] == "training"
        ]:
            assert time.time() < deadline
            time.sleep(0.05)
        (run / "cancel").touch()

    threading.Thread(target=cancel_after_the_first_step, daemon=True).start()
    assert train(run) == "cancelled"
    final = status(run)
    steps = final["metrics"]["steps"]
    assert final["state"] == "cancelled" and f"step {steps}" in final["reason"]
    assert 1 <= steps < 200 and events(run, "cancel_requested")[0]["step"] == steps
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), run / "final")


def test_a_cancel_before_the_first_step_trains_nothing(tiny_model, tmp_path):
    from engine.training.worker import train

    run = make_run(tmp_path / "run", tiny_config(tiny_model), BILLS, WEATHER)
    (run / "cancel").touch()  # asked while the worker was still loading the model
    assert train(run) == "cancelled"
    assert "before the first step" in status(run)["reason"]
    assert not (run / "final").exists()
    assert [e["phase"] for e in events(run, "progress")] == ["loading model"]


def test_a_crashing_worker_leaves_failed_with_its_reason(tmp_path):
    missing = tmp_path / "no-such-model"
    run = make_run(tmp_path / "run", TrainConfig(base_model=str(missing)), BILLS, WEATHER)
    runfolder.start_worker(run, ["train", str(run)])
    deadline = time.time() + 60
    while (state := runfolder.poll(run)).state == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert state.state == "failed"
    assert f"The base model folder {missing} does not exist" in state.reason


@pytest.mark.slow
@pytest.mark.heavy
def test_the_default_model_learns_bills_in_a_few_steps(home, congress_train):
    from engine.training.worker import train

    rows = [json.loads(line) for line in congress_train.open(encoding="utf-8")]
    pairs = [(r["document"], r["summary"]) for r in rows[:48]]
    config = TrainConfig(  # the default base model, converted once into `home`
        learning_rate=1e-3,
        lr_scheduler="constant",
        warmup_ratio=0.0,
        max_steps=8,
        batch_size=2,
        max_length=256,
        max_new_tokens=32,
        eval_every_steps=4,
        rouge_eval_samples=0,
        early_stopping_patience=0,
    )
    run = make_run(home / "run", config, pairs[:40], pairs[40:])
    assert train(run) == "succeeded", status(run).get("reason")
    losses = [e["eval_loss"] for e in events(run, "eval")]
    assert len(losses) == 3 and losses[2] < losses[1] < losses[0]
    assert events(run, "start")[0]["documents_cut"] > 0


def test_settings_that_leave_no_room_for_the_summaries_fail_with_a_clear_reason(
    tiny_model, tmp_path
):
    from engine.training.worker import train

    wordy = "Summarize the document below carefully and faithfully, please. " * 12
    config = tiny_config(tiny_model, instruction=wordy, rouge_eval_samples=0)
    run = make_run(tmp_path / "run", config, BILLS, WEATHER)
    assert train(run) == "failed"
    assert "No training example fits max_length 128" in status(run)["reason"]


def test_an_example_whose_summary_cannot_fit_is_left_out_never_cut(tiny_model):
    from engine.models.embedded import load_tokenizer
    from engine.training.data import fit_examples

    tokenizer = load_tokenizer(str(tiny_model))
    config = TrainConfig(instruction=INSTRUCTION, max_length=128, max_new_tokens=16)
    records = [
        training_record("A short bill.", "Its summary.", INSTRUCTION),
        training_record("Another bill.", "A summary that goes on and on. " * 30, INSTRUCTION),
    ]
    examples, documents_cut, summaries_too_long = fit_examples(tokenizer, records, config)
    assert (documents_cut, summaries_too_long) == (0, 1)
    assert examples == [records[0]]  # the trainer never sees a summary it would have to cut


def test_preflight_warns_when_most_training_documents_exceed_max_length():
    config = TrainConfig(epochs=3, eval_every_steps=20, max_length=512)
    lengths = [700] * 1800 + [300] * 200
    warnings = preflight(config, 2000, 100, lengths)
    assert len(warnings) == 1
    assert "About 1800 of 2000 training documents (90%)" in warnings[0]
    assert "max_length of about 768" in warnings[0]  # 700 rounded up to a multiple of 128
    assert preflight(config, 2000, 100, [700] * 20 + [300] * 1980) == []  # 1%: normal


def test_a_run_folder_exports_train_and_validation_never_test(con, home, monkeypatch):
    from engine.data.samples import load_sample_if_empty
    from engine.followups import followup_plan
    from engine.training import runs as training_runs
    from store import registry as reg_store
    from store import splits as splits_store

    load_sample_if_empty(con)
    reg_store.register_model(con, "base", "base", str(home / "no-model"))
    monkeypatch.setattr(
        training_runs.runqueue, "pump", lambda con: []
    )  # write the folder, start nothing
    config = TrainConfig.from_dict(PRESETS["Quick (CPU demo)"])
    run_id, warnings = training_runs.start_training(con, config, "base", followup=followup_plan)

    run_dir = Path(con.execute("SELECT run_dir FROM runs WHERE id = ?", [run_id]).fetchone()[0])
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.json",
        "followup.json",
        "train.jsonl",
        "validation.jsonl",
    ]
    n_train, n_validation, n_test = splits_store.dataset_counts(con, config.dataset_version)
    assert n_test > 0  # the dataset version has a test split; the run folder does not
    followup = json.loads((run_dir / "followup.json").read_text())  # for the worker's ETA
    assert followup["documents"] == n_test and followup["evaluations"] == 1  # only the new model
    for name, n in (("train", n_train), ("validation", n_validation)):
        assert len((run_dir / f"{name}.jsonl").read_text().splitlines()) == n
    # The sample's cases are ~300 words: at the Quick preset's 512 tokens nearly all are cut.
    assert any(f"of {n_train} training documents" in w for w in warnings)
