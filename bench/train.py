"""Training throughput: our trainer's settings against a plain TRL SFTTrainer, same model and data.

    python bench/train.py [--steps 6] [--preset "Quick (CPU demo)"] [--no-packing-row]

One process, the real default model (SmolLM2-135M-Instruct), bills from
../shared/data/congress119/train.jsonl as prompt/completion records (engine/models/prompts.py).
Rows:
- "TRL defaults": SFTTrainer(model=path, args=SFTConfig(...)) with TRL's defaults (full
  fine-tuning, bf16 autocast even on CPU, gradient checkpointing, truncation at max_length);
  only max_steps, batch size and max_length are set to ours so the work per step matches (and
  use_cpu on a CPU, without which TRL's default bf16 refuses to start).
- "ours": engine.training.worker.build_trainer with the preset (the Quick preset on CPU, Standard
  on GPU;
  documents cut to fit, LoRA, bf16 only where the GPU supports it, length-grouped batches),
  without a validation split so only training is timed.
- "ours + packing": the same with packing (padding-free, position ids restart per example).
Each row times its optimizer steps after a warm-up step and counts non-padding input tokens.
Memory: on GPU the peak allocated by torch; on CPU the peak resident set size sampled every
20 ms, above the process's size before the row started. MFU (GPU only): (6 x params for full
fine-tuning, 4 x params for LoRA, whose frozen weights need no weight gradients) x tokens/s over
the GPU's dense bf16 peak; attention FLOPs are left out. Results: bench/results/train-*.txt.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "congress119" / "train.jsonl"
sys.path.insert(0, str(ROOT))

PEAK_BF16_FLOPS = {
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "4090": 165e12,
}


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__} (no GPU)"
    )


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """Peak memory while the block runs: torch's on GPU, sampled RSS above the start on CPU."""

    def __enter__(self):
        import torch

        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return self
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        import torch

        if self.cuda:
            self.bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.bytes = self.peak - self.start


def step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Seconds and non-padding input tokens of each optimizer step after the first."""

        def __init__(self):
            self.seconds, self.tokens, self._t, self._seen = 0.0, 0, 0.0, 0

        def on_step_begin(self, args, state, control, **kwargs):
            self._t, self._seen = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step > 1:
                self.seconds += time.perf_counter() - self._t
                self.tokens += state.num_input_tokens_seen - self._seen

    return StepTimer()


def trl_defaults(model_dir: str, records: list[dict], config, out: str):
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        # TRL's default bf16=True refuses to start on a CPU unless use_cpu is set.
        use_cpu=not torch.cuda.is_available(),
        output_dir=out,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_length=config.max_length,
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        include_num_input_tokens_seen="non_padding",  # measurement only
    )
    data = Dataset.from_list(
        [{"prompt": r["prompt"], "completion": r["completion"]} for r in records]
    )
    trainer = SFTTrainer(model=model_dir, args=args, train_dataset=data)
    return trainer, "full", trainer.args.bf16


def ours(records: list[dict], config, out: str):
    from engine.jobs.runfolder import RunWriter
    from engine.training.worker import build_trainer

    trainer, _, facts = build_trainer(config, Path(out), records, [], RunWriter(out))
    return trainer, config.method, facts["bf16"]


def measure(name: str, build, n_params: int) -> str:
    import torch
    from transformers import PrinterCallback

    gc.collect()
    with tempfile.TemporaryDirectory() as out, PeakMemory() as memory:
        trainer, method, bf16 = build(out)
        timer = step_timer()
        trainer.add_callback(timer)
        trainer.remove_callback(PrinterCallback)  # the table is the output
        trainer.train()
    del trainer
    rate = timer.tokens / timer.seconds
    mfu = "-"
    if torch.cuda.is_available():
        name_gpu = torch.cuda.get_device_name(0)
        peak = next((f for key, f in PEAK_BF16_FLOPS.items() if key in name_gpu), None)
        if peak:
            mfu = f"{(6 if method == 'full' else 4) * n_params * rate / peak:.1%}"
    return (
        f"{name:<18}{method:>6}{str(bool(bf16)):>6}{timer.tokens:>9}{timer.seconds:>9.1f}"
        f"{rate:>10.1f}{memory.bytes / 2**30:>10.2f}{mfu:>7}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per row (1 warm-up)")
    parser.add_argument("--preset", help="default: Quick (CPU demo) on CPU, Standard on GPU")
    parser.add_argument("--no-packing-row", action="store_true")
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA} is absent: nothing to measure.")
        return 0

    import torch
    from transformers import AutoConfig

    from engine.models.embedded import default_model_dir
    from engine.models.prompts import training_record
    from engine.training.config import PRESETS, TrainConfig

    preset = args.preset or ("Standard" if torch.cuda.is_available() else "Quick (CPU demo)")
    config = TrainConfig.from_dict(
        PRESETS[preset]
        | {
            "base_model": str(default_model_dir()),
            "max_steps": args.steps,
            "train_subset": None,
            "early_stopping_patience": 0,
        }
    )
    n_examples = args.steps * config.batch_size * config.grad_accum
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")][:n_examples]
    records = [training_record(r["document"], r["summary"]) | {"id": i} for i, r in enumerate(rows)]
    model_dir = str(config.base_model)
    model_config = AutoConfig.from_pretrained(model_dir)
    from transformers import AutoModelForCausalLM

    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_config(model_config).parameters())

    print(f"machine: {machine()}")
    print(
        f"model: SmolLM2-135M-Instruct ({n_params / 1e6:.0f}M parameters); data: first "
        f"{len(records)} bills of congress119/train.jsonl"
    )
    print(
        f"settings: preset {preset!r}: {config.method}, batch {config.batch_size} x "
        f"{config.grad_accum}, max_length {config.max_length}, {args.steps} steps "
        "(the first is a warm-up, not timed)\n"
    )
    print(
        f"{'trainer':<18}{'method':>6}{'bf16':>6}{'tokens':>9}{'seconds':>9}{'tokens/s':>10}"
        f"{'peak GiB':>10}{'MFU':>7}",
        flush=True,
    )
    rows = [
        ("TRL defaults", lambda out: trl_defaults(model_dir, records, config, out)),
        ("ours", lambda out: ours(records, config, out)),
    ]
    if not args.no_packing_row:
        rows.append(
            ("ours + packing", lambda out: ours(records, replace(config, packing=True), out))
        )
    for name, build in rows:
        print(measure(name, build, n_params), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
