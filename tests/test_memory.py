"""The pre-run memory estimate: an impossible run is refused with a clear message, a possible
one passes, and the worker refuses before loading the model."""

from __future__ import annotations

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
