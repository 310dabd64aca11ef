"""The GPU path (`gpu` marker: skipped without CUDA, see conftest.py): the same worker, run
folder and events as on the CPU, with the model on the GPU, LoRA and full fine-tunes, and a
batched generation in bf16 on the device. Not yet run on a GPU: no device was lent to the
session that wrote it (issue 23)."""

from __future__ import annotations

import pytest

from tests.test_train import BILLS, WEATHER, events, make_run, status, tiny_config

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_run_trains_on_the_gpu_in_bf16(tiny_model, tmp_path, method):
    from engine.training.worker import train

    config = tiny_config(
        tiny_model, method=method, learning_rate=5e-2 if method == "lora" else 1e-4
    )
    run = make_run(tmp_path / "run", config, BILLS, WEATHER)
    assert train(run) == "succeeded", status(run)["reason"]
    start = events(run, "start")[0]
    assert start["device"].startswith("cuda")
    losses = [e["loss"] for e in events(run, "train")]
    assert len(losses) >= 6 and all(loss == loss for loss in losses)  # no NaN in bf16
    assert status(run)["metrics"]["train_tokens_per_s"] > 0


def test_batched_generation_runs_on_the_gpu(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, padding_side="left")
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16).to("cuda")
    batch = tokenizer(["Summarize: a bill", "Summarize: the weather today"], return_tensors="pt",
                      padding=True).to("cuda")  # fmt: skip
    out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    assert out.shape[0] == 2 and out.device.type == "cuda"
