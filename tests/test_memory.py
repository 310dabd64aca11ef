"""The pre-run memory estimate: an impossible run is refused with a clear message, a possible
one passes, and the worker refuses before loading the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.training import memory
from engine.training.config import TrainConfig
from engine.training.memory import GB, estimate, memory_check, model_shape

EIGHT_B = (8_000_000_000, 4096, 32)  # Llama-3-8B-like: parameters, hidden size, layers


def fake_free(monkeypatch, gb: float, where: str = "this GPU has"):
    monkeypatch.setattr(memory, "available", lambda: (gb * GB, where))


def test_full_fine_tuning_of_an_8b_model_is_refused_on_a_24_gb_gpu(monkeypatch):
    fake_free(monkeypatch, 24)
    config = TrainConfig(method="full", batch_size=4, max_length=1024, bf16=True)
    message = memory_check(config, EIGHT_B)
    assert message is not None
    assert message.startswith("This run needs about ")
    assert "this GPU has 24.0 GB free" in message and "use LoRA" in message
    need = float(message.split("about ")[1].split(" GB")[0])
    assert need > 100  # 8B x (2 weights + 2 grads + 8 Adam + 4 master) bytes alone is ~119 GB


def test_lora_on_a_small_model_fits_and_the_same_run_fails_with_too_little(monkeypatch):
    config = TrainConfig(method="lora", batch_size=4, max_length=1024, bf16=False)
    shape = (135_000_000, 576, 30)  # SmolLM2-135M
    fake_free(monkeypatch, 16, "this machine has")
    assert memory_check(config, shape) is None
    fake_free(monkeypatch, 0.5, "this machine has")
    message = memory_check(config, shape)
    assert "this machine has 0.5 GB free" in message and "lower the batch size" in message


def test_estimate_grows_with_method_batch_and_shrinks_with_checkpointing():
    args = dict(n_params=10**9, hidden_size=2048, n_layers=24, batch_size=4, max_length=1024)
    lora, full = estimate(method="lora", **args), estimate(method="full", **args)
    assert full.grads_and_optimizer > 50 * lora.grads_and_optimizer
    assert lora.weights == full.weights == 4 * 10**9
    big = estimate(method="lora", **(args | {"batch_size": 8}))
    assert big.activations == pytest.approx(2 * lora.activations)
    ckpt = estimate(method="lora", gradient_checkpointing=True, **args)
    assert ckpt.activations < lora.activations / 4


def test_model_shape_counts_the_tiny_models_parameters(tiny_model):
    from transformers import AutoModelForCausalLM

    counted, hidden, layers = model_shape(str(tiny_model))
    real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model).parameters())
    assert (hidden, layers) == (64, 2)
    assert abs(counted - real) <= 0.02 * real  # norms are left out of the count


def test_available_reports_real_memory():
    free, where = memory.available()
    assert free > 0 and where in ("this GPU has", "this machine has")


def test_the_worker_refuses_a_run_that_cannot_fit_before_loading_the_model(
    tiny_model, tmp_path, monkeypatch
):
    import json

    from engine.training import worker

    fake_free(monkeypatch, 0.001, "this machine has")
    monkeypatch.setattr(worker, "build_trainer", lambda *a: pytest.fail("the model was loaded"))
    config = TrainConfig(base_model=str(tiny_model), method="full", max_steps=1)
    (tmp_path / "config.json").write_text(config.to_json())
    record = {"prompt": [{"role": "user", "content": "x"}], "completion": "y"}
    (tmp_path / "train.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match="This run needs about .* GB free"):
        worker.run_training(tmp_path)


def test_a_multi_machine_launcher_is_accepted_by_accelerates_own_parser():
    from accelerate.commands.launch import launch_command_parser

    from engine.jobs import runfolder

    command = runfolder.worker_command(
        ["train", "r"],
        runfolder.accelerate_launcher(4, machines=2, rank=1, main_ip="10.0.0.5", main_port=29501),
    )
    launcher = command[3 : command.index("--module")]
    args = launch_command_parser().parse_args([*launcher, "--module", "engine", "train", "r"])
    assert (args.num_machines, args.machine_rank, args.num_processes) == (2, 1, 8)
    assert (args.main_process_ip, args.main_process_port) == ("10.0.0.5", 29501)
    assert args.multi_gpu and args.module and args.training_script == "engine"
    fsdp = runfolder.accelerate_launcher(8, fsdp=True, machines=3, rank=0, main_ip="h0")
    parsed = launch_command_parser().parse_args([*fsdp[3:], "--module", "engine"])
    assert parsed.use_fsdp and parsed.num_processes == 24 and parsed.machine_rank == 0
    assert runfolder.accelerate_launcher(1) is None  # one GPU, one machine: no launcher
    assert runfolder.accelerate_launcher(1, machines=2, rank=1, main_ip="h0") is not None
    with pytest.raises(ValueError, match="main_ip"):
        runfolder.accelerate_launcher(4, machines=2, rank=1)
    with pytest.raises(ValueError, match="rank"):
        runfolder.accelerate_launcher(4, machines=2, rank=2, main_ip="h0")


def test_padding_free_packing_mixes_examples_with_sdpa_so_the_config_turns_it_off(
    tiny_model, tmp_path
):
    """TRL's bfd packing feeds one row with position ids restarting per example and no attention
    mask. With SDPA (the CPU's attention) the second example then attends to the first: its
    logits differ from the same example alone. So packing stays off here, and preflight says so."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.training.config import packing_support, preflight, sft_config

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa").eval()
    a, b = list(range(100, 130)), list(range(400, 417))
    positions = torch.tensor([list(range(len(a))) + list(range(len(b)))])
    with torch.no_grad():
        alone_a = model(input_ids=torch.tensor([a])).logits[0]
        alone_b = model(input_ids=torch.tensor([b])).logits[0]
        packed = model(input_ids=torch.tensor([a + b]), position_ids=positions).logits[0]
    assert torch.allclose(packed[: len(a)], alone_a, atol=1e-4)  # the first example is intact
    assert not torch.allclose(packed[len(a) :], alone_b, atol=1e-2)  # the second one leaks
    if torch.cuda.is_available():
        pytest.skip("the refusal below is for machines without a GPU")
    config = TrainConfig(packing=True, eval_every_steps=20, epochs=3)
    assert "FlashAttention" in packing_support()
    assert any(w.startswith("Packing is turned off") for w in preflight(config, 2000, 100))
    sft = sft_config(config, str(tmp_path), has_validation=True)
    assert sft.packing is False and sft.use_liger_kernel is False
    assert preflight(TrainConfig(epochs=3, eval_every_steps=20), 2000, 100) == []


def llama_3_8b():
    """Llama-3-8B's shape, built offline from its config alone (no weights)."""
    from transformers import LlamaConfig

    from engine.training.memory import shape_of

    return shape_of(
        LlamaConfig(
            hidden_size=4096,
            num_hidden_layers=32,
            intermediate_size=14336,
            num_attention_heads=32,
            num_key_value_heads=8,
            vocab_size=128256,
            tie_word_embeddings=False,
        )
    )


def test_the_8b_estimate_matches_the_hand_computed_figures():
    """Llama-3-8B, LoRA r=16 on all linear layers, batch 4 x 2048 tokens, bf16.
    Parameters (head_dim = 4096 / 32 = 128, KV width = 8 x 128 = 1024):
      attention per layer = q 4096x4096 + k 4096x1024 + v 4096x1024 + o 4096x4096
                          = 4096 x 128 x (2x32 + 2x8) = 41,943,040
      MLP per layer       = 3 x 4096 x 14336 = 176,160,768
      per layer           = 218,103,808; x 32 layers = 6,979,321,856 (the linear weights)
      embeddings          = 2 (untied) x 128256 x 4096 = 1,050,673,152
      total               = 8,029,995,008 (norms, ~0.27M, are left out)
    LoRA parameters per unit of rank per layer, r x (in + out) for each linear layer:
      q 8192 + k 5120 + v 5120 + o 8192 + gate 18432 + up 18432 + down 18432 = 81,920;
      x 32 layers = 2,621,440; x r 16 = 41,943,040 (0.52% of the weights)
    Weights, bf16: 8,029,995,008 x 2 = 16,059,990,016 bytes (14.96 GiB)
    Weights, NF4 with double quantization: (4 + 8/64 + 32/(64 x 256)) / 8 = 0.515869140625
      bytes per linear weight: 6,979,321,856 x 0.515869140625 = 3,600,416,768; the embeddings
      in fp32 (prepare_model_for_kbit_training upcasts them): 1,050,673,152 x 4 = 4,202,692,608;
      together 7,803,109,376 bytes (7.27 GiB)
    Gradients and AdamW: 41,943,040 x (2 grad + 8 moments + 4 fp32 master) = 587,202,560
    Activations: 4 x 2048 x 4096 x 32 layers x 2 bytes x 16 = 34,359,738,368 (32 GiB);
      with checkpointing x 2 instead of x 16 = 4,294,967,296 (4 GiB)
    Logits: 4 x 2048 x 128256 x (2 bf16 + 4 fp32 copy) = 6,304,038,912
    Total with checkpointing, bf16: (16,059,990,016 + 587,202,560 + 4,294,967,296
      + 6,304,038,912) x 1.1 = 29,970,818,662 bytes (27.9 GiB); NF4: 7,803,109,376 in place of
      the bf16 weights: (7,803,109,376 + 587,202,560 + 4,294,967,296 + 6,304,038,912) x 1.1
      = 20,888,249,958 bytes (19.5 GiB)."""
    from engine.training.memory import needed

    shape = llama_3_8b()
    assert shape.n_params == 8_029_995_008
    assert shape.embedding_params == 1_050_673_152 and shape.vocab == 128256
    assert shape.lora_params_per_rank == 2_621_440
    common = dict(
        n_params=shape.n_params,
        hidden_size=4096,
        n_layers=32,
        method="lora",
        batch_size=4,
        max_length=2048,
        dtype_bytes=2,
        embedding_params=shape.embedding_params,
        vocab=shape.vocab,
        lora_params=16 * shape.lora_params_per_rank,
    )
    bf16 = estimate(**common)
    assert bf16.weights == 16_059_990_016
    assert bf16.grads_and_optimizer == 587_202_560
    assert bf16.activations == 34_359_738_368
    assert bf16.logits == 6_304_038_912
    ckpt = estimate(**common, gradient_checkpointing=True)
    assert ckpt.activations == 4_294_967_296
    assert ckpt.total == pytest.approx(29_970_818_662, abs=1)
    nf4 = estimate(**common, gradient_checkpointing=True, quantization="nf4")
    assert nf4.weights == 7_803_109_376
    assert nf4.total == pytest.approx(20_888_249_958, abs=1)
    # The same figures from a TrainConfig, as memory_check computes them.
    config = TrainConfig(batch_size=4, max_length=2048, bf16=True, gradient_checkpointing=True)
    assert needed(config, shape) == pytest.approx(ckpt.total)
    qlora = TrainConfig.from_dict(config.to_dict() | {"quantization": "nf4"})
    assert needed(qlora, shape) == pytest.approx(nf4.total)
    # Full fine-tuning, bf16: 8,029,995,008 x (2 + 2 + 8 + 4) = 128,479,920,128 bytes.
    full = estimate(**(common | {"method": "full", "lora_params": None}))
    assert full.grads_and_optimizer == 8_029_995_008 * 14
    assert full.weights + full.grads_and_optimizer == 128_479_920_128


def test_a_run_is_fitted_to_the_gpu_with_checkpointing_then_smaller_batches():
    shape = llama_3_8b()
    config = TrainConfig(batch_size=8, grad_accum=2, max_length=2048, bf16=True)
    # 24 GB: checkpointing alone is not enough at batch 8 (38.8 GB), batch 2 x 8 fits (22.5 GB).
    fitted, reasons = memory.fit_to_memory(config, 24 * GB, shape)
    assert fitted.gradient_checkpointing and (fitted.batch_size, fitted.grad_accum) == (2, 8)
    assert reasons[0].startswith("Gradient checkpointing turned on: without it the run needs")
    assert "Batch size 8 -> 2 with gradient accumulation 2 -> 8" in reasons[1]
    assert "the same effective batch of 16" in reasons[1]
    assert config.batch_size == 8 and not config.gradient_checkpointing  # a copy is changed
    # 80 GB: checkpointing alone fits, the batch stays.
    fitted, reasons = memory.fit_to_memory(config, 80 * GB, shape)
    assert fitted.gradient_checkpointing and fitted.batch_size == 8 and len(reasons) == 1
    # A run that fits as it is, and one that fits at no batch size, are left alone.
    assert memory.fit_to_memory(config, 200 * GB, shape) == (config, [])
    assert memory.fit_to_memory(config, 8 * GB, shape) == (config, [])
    # A batch of 6 goes down through its divisors, keeping 6 x 1 examples a step.
    six = TrainConfig(batch_size=6, max_length=2048, bf16=True, gradient_checkpointing=True)
    fitted, _ = memory.fit_to_memory(six, 23 * GB, shape)
    assert (fitted.batch_size, fitted.grad_accum) == (2, 3)


def test_fitting_changes_nothing_on_a_cpu(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    config = TrainConfig(batch_size=64, max_length=4096)
    assert memory.fit_to_gpu(config, llama_3_8b()) == (config, [])


def test_the_worker_and_the_app_train_with_the_fitted_config(
    tiny_model, tmp_path, monkeypatch, con, home
):
    import dataclasses
    import json

    from engine.data.samples import load_sample_if_empty
    from engine.training import runs as training_runs
    from engine.training import worker
    from store import registry as reg_store

    def fit(config, shape=None):
        return dataclasses.replace(config, batch_size=1, grad_accum=4), ["fitted to this GPU"]

    class Loaded(Exception):
        pass

    def build_trainer(config, *args):
        raise Loaded(config)

    monkeypatch.setattr(memory, "fit_to_gpu", fit)
    monkeypatch.setattr(worker, "build_trainer", build_trainer)
    config = TrainConfig(base_model=str(tiny_model), batch_size=4, max_steps=1)
    (tmp_path / "config.json").write_text(config.to_json())
    record = {"prompt": [{"role": "user", "content": "x"}], "completion": "y"}
    (tmp_path / "train.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(Loaded) as loaded:
        worker.run_training(tmp_path)
    assert (loaded.value.args[0].batch_size, loaded.value.args[0].grad_accum) == (1, 4)

    monkeypatch.setattr(training_runs, "fit_to_gpu", fit)
    monkeypatch.setattr(training_runs.runqueue, "pump", lambda con: [])
    load_sample_if_empty(con)
    reg_store.register_model(con, "base", "base", str(home / "no-model"))
    run_id, warnings = training_runs.start_training(con, TrainConfig(batch_size=4), "base")
    run_dir = con.execute("SELECT run_dir FROM runs WHERE id = ?", [run_id]).fetchone()[0]
    written = TrainConfig.from_json((Path(run_dir) / "config.json").read_text())
    assert (written.batch_size, written.grad_accum) == (1, 4)
    assert "fitted to this GPU" in warnings
