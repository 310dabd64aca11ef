"""Presets for bigger models (engine/training/presets.py) and QLoRA: every preset is a valid
config, the old presets are unchanged, and a QLoRA run that cannot load here (no CUDA, no
bitsandbytes) is refused with a message for people before any dataset is frozen or any model
loaded. The 4-bit load itself needs a GPU: tests/test_gpu.py."""

from __future__ import annotations

import json

import pytest

from engine.errors import TuneloopError
from engine.training.config import PRESETS, TrainConfig, preflight, require_quantization_support
from engine.training.presets import BIGGER_MODELS

SIZES = ("0.5b", "1.5b", "3b", "7b")


def no_cuda(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)


def test_lora_and_qlora_presets_for_each_size_are_valid_and_offered():
    for size in SIZES:
        lora = TrainConfig.from_dict(PRESETS[f"lora-{size}"])
        qlora = TrainConfig.from_dict(PRESETS[f"qlora-{size}"])
        assert lora.method == qlora.method == "lora"
        assert (lora.quantization, qlora.quantization) == (None, "nf4")
        for config in (lora, qlora):
            assert config.batch_size * config.grad_accum == 16
            assert config.max_length == 2048 and config.lora_alpha == 2 * config.lora_r
        assert qlora.gradient_checkpointing
    rates = [PRESETS[f"lora-{size}"]["learning_rate"] for size in SIZES]
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0]  # bigger: gentler
    assert all(PRESETS[f"lora-{s}"]["gradient_checkpointing"] for s in SIZES[1:])
    assert set(BIGGER_MODELS) <= set(PRESETS)


def test_the_old_presets_are_unchanged():
    assert list(PRESETS)[:3] == ["Quick (CPU demo)", "Standard", "Thorough"]
    quick = TrainConfig.from_dict(PRESETS["Quick (CPU demo)"])
    assert (quick.max_steps, quick.batch_size, quick.max_length, quick.lora_r) == (24, 2, 512, 8)
    assert quick.train_subset == 48 and quick.quantization is None
    standard, thorough = (TrainConfig.from_dict(PRESETS[n]) for n in ("Standard", "Thorough"))
    assert (standard.batch_size, standard.grad_accum, standard.max_length) == (8, 2, 1024)
    assert (thorough.method, thorough.learning_rate, thorough.gradient_checkpointing) == (
        "full",
        2e-5,
        True,
    )


def test_a_preset_picked_over_last_good_qlora_settings_clears_the_quantization():
    """The Train page and the CLI apply a preset over the last good settings (dict union)."""
    last_good = TrainConfig.from_dict(PRESETS["qlora-7b"]).to_dict()
    for name in ("Quick (CPU demo)", "Standard", "Thorough", "lora-3b"):
        assert TrainConfig.from_dict(last_good | PRESETS[name]).quantization is None
    assert TrainConfig.from_dict(last_good | PRESETS["qlora-0.5b"]).quantization == "nf4"


def test_quantization_is_checked_when_the_config_is_built():
    with pytest.raises(TuneloopError, match="quantization must be empty or 'nf4'"):
        TrainConfig(quantization="int8")
    with pytest.raises(TuneloopError, match="set method to 'lora'"):
        TrainConfig(method="full", quantization="nf4")
    config = TrainConfig(quantization="nf4")
    assert TrainConfig.from_json(config.to_json()) == config


def test_qlora_on_a_cpu_is_refused_with_a_message_for_people(monkeypatch):
    from engine.training.memory import memory_check

    no_cuda(monkeypatch)
    config = TrainConfig.from_dict(PRESETS["qlora-0.5b"])
    for check in (
        lambda: require_quantization_support(config),
        lambda: preflight(config, 500, 50),
        lambda: memory_check(config, (135_000_000, 576, 30)),
    ):
        with pytest.raises(TuneloopError, match="QLoRA .* needs a CUDA GPU.*pick a LoRA preset"):
            check()
    require_quantization_support(TrainConfig())  # no quantization: nothing to check
    assert preflight(TrainConfig(epochs=3, eval_every_steps=20), 2000, 100) == []


def test_qlora_without_bitsandbytes_says_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name)
    )
    with pytest.raises(TuneloopError, match="needs the bitsandbytes package: `pip install"):
        require_quantization_support(TrainConfig(quantization="nf4"))


def test_the_worker_refuses_qlora_on_a_cpu_before_loading_the_model(
    tiny_model, tmp_path, monkeypatch
):
    from engine.training import worker

    no_cuda(monkeypatch)
    monkeypatch.setattr(worker, "build_trainer", lambda *a: pytest.fail("the model was loaded"))
    config = TrainConfig(base_model=str(tiny_model), quantization="nf4", max_steps=1)
    (tmp_path / "config.json").write_text(config.to_json())
    record = {"prompt": [{"role": "user", "content": "x"}], "completion": "y"}
    (tmp_path / "train.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(TuneloopError, match="needs a CUDA GPU"):
        worker.run_training(tmp_path)
    assert worker.train(tmp_path) == "failed"  # the run records the reason for people
    status = json.loads((tmp_path / "status.json").read_text())
    assert "needs a CUDA GPU" in status["reason"]


def test_the_app_refuses_qlora_on_a_cpu_before_freezing_a_dataset(con, home, monkeypatch):
    from engine.data.samples import load_sample_if_empty
    from engine.training import runs as training_runs
    from store import registry as reg_store

    no_cuda(monkeypatch)
    load_sample_if_empty(con)
    reg_store.register_model(con, "base", "base", str(home / "no-model"))
    monkeypatch.setattr(training_runs.runqueue, "pump", lambda con: [])
    before = con.execute("SELECT count(*) FROM dataset_versions").fetchone()[0]
    config = TrainConfig.from_dict(PRESETS["qlora-1.5b"])
    with pytest.raises(TuneloopError, match="needs a CUDA GPU"):
        training_runs.start_training(con, config, "base")
    assert con.execute("SELECT count(*) FROM dataset_versions").fetchone()[0] == before


def test_the_worker_loads_a_4bit_nf4_base_only_for_qlora():
    import torch

    from engine.training.worker import prepare_quantized, quantized

    assert quantized(TrainConfig()) == {}
    args = quantized(TrainConfig(quantization="nf4"))
    bnb = args["quantization_config"]
    assert bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "nf4"
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16 and bnb.bnb_4bit_use_double_quant
    assert args["device_map"] == {"": 0}
    model = object()
    assert prepare_quantized(model, TrainConfig()) is model


def test_picking_a_preset_on_the_train_page_sets_its_values_and_the_qlora_box():
    """A widget with a key keeps its value when its default changes, so before the fix picking
    a preset after the first render changed nothing under "Advanced" (batch 4 stayed 4)."""
    import re

    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT
    from ui.train_config import SETTING_KEYS

    def page():
        import streamlit as st

        from engine.training.config import TrainConfig
        from ui.train_config import config_ui

        c = config_ui(TrainConfig())
        st.write(f"{c.batch_size} {c.max_length} {c.quantization}" if c else "invalid")

    at = AppTest.from_function(page).run()
    assert {"lora-7b", "qlora-7b"} <= set(at.selectbox(key="train_preset").options)
    assert at.markdown[-1].value == "4 1024 None"
    at.selectbox(key="train_preset").select("Thorough").run()
    assert at.markdown[-1].value == "8 2048 None"
    assert at.number_input(key="train_batch").value == 8
    at.selectbox(key="train_preset").select("qlora-7b").run()
    assert at.checkbox(key="train_qlora").value and at.markdown[-1].value == "4 2048 nf4"
    at.checkbox(key="train_qlora").uncheck().run()
    assert at.markdown[-1].value == "4 2048 None"
    source = (ROOT / "ui" / "train_config.py").read_text(encoding="utf-8")
    keyed = set(re.findall(r'key="(train_[a-z_]+)"', source)) - {"train_preset"}
    assert keyed == set(SETTING_KEYS)  # every setting's widget starts again from a new preset
