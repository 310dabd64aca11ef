"""Does the labelling order pay? Simulated labelling of congress bills, the reference summaries
playing the reviewer: fine-tune on N bills picked by the app's order (engine/labelling/ordering.py)
against N picked at random, and score both on the same held-out bills.

    python bench/active.py [--sizes 8,16,32] [--pool N] [--test N] [--max-words W]
                           [--epochs E] [--preset P] [--set FIELD=VALUE ...]
                           [--max-new-tokens N] [--seed S] [--data FILE] [--out FILE]

1. Split ../shared/data/congress119/train.jsonl as bench/evaluate.py does (bench/heldout.py:
   companion bills grouped, whole groups dealt by seed 13). The pool to label is the first
   --pool bills of the train side, the held-out set the first --test bills of the test side
   (both of at most --max-words words).
2. What the app knows before anyone labels: the base model drafts every pool bill with the
   drafting worker (greedy; each draft's mean token log-probability recorded), the fact check
   runs on the drafts, MiniLM embeds the bills. `ordering.rank` orders the pool from these
   (no training set yet: unsure, fact check and farthest-first diversity, round-robin). The
   references are never looked at for the order.
3. Random: the pool shuffled with --seed. For each N in --sizes, each strategy's first N bills
   (nested sets) train a LoRA fine-tune of the default model (the training worker in its own
   process; the preset, --epochs passes, no validation split: the last weights; the same seed
   for both), then the evaluation worker summarizes and scores the held-out bills (greedy).
   --work DIR keeps the run folders, and a rerun reuses every run that finished.
Prints per N: ROUGE-2 of both (mean, bootstrap 95% CI), order minus random on the same bills
(paired bootstrap), the reasons behind the ordered picks, and how many labels the order needs
to reach random's best ROUGE-2 among the sizes tried. On a CPU the defaults are tiny
(minutes); on a GPU: --sizes 32,64,128,256 --pool 1024 --test 128 --preset Standard.
Results: bench/results/active-cpu.txt.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "congress119" / "train.jsonl"
sys.path.insert(0, str(ROOT))

from bench.evaluate import load, machine, versions  # noqa: E402
from bench.heldout import read_bills, short, split_bills, write_train_run  # noqa: E402


def fine_tune(run_dir: Path, config, bills: list[dict]) -> dict:
    """Train with the app's worker in its own process (`python -m engine train`, so memory is
    returned after each run); a run folder that already succeeded is reused. Returns
    status.json's metrics plus wall_s."""
    import subprocess

    status_file = run_dir / "status.json"
    started = time.perf_counter()
    if not (status_file.exists() and json.loads(status_file.read_text())["state"] == "succeeded"):
        write_train_run(run_dir, config, bills, [])
        with open(run_dir / "worker.log", "w", encoding="utf-8") as log:
            command = [sys.executable, "-m", "engine", "train", str(run_dir)]
            subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
    status = json.loads(status_file.read_text())
    if status["state"] != "succeeded":
        raise RuntimeError(f"training in {run_dir} {status['state']}: {status.get('reason')}")
    return status["metrics"] | {"wall_s": time.perf_counter() - started}


def draft_pool(run_dir: Path, base_dir: str, bills: list[dict], settings) -> dict:
    """{bill id: draft row (summary, mean_logprob)} from the app's drafting worker."""
    from engine.models.drafting import DRAFTS, DraftConfig, run_drafting, write_run

    documents = [{"document_id": b["id"], "text": b["document"]} for b in bills]
    if not (run_dir / "config.json").exists():  # a kept folder resumes where it stopped
        write_run(run_dir, DraftConfig(model=base_dir, generation=settings), documents)
    if run_drafting(run_dir) != "succeeded":
        raise RuntimeError("drafting the pool failed: see its status.json")
    rows = [json.loads(line) for line in (run_dir / DRAFTS).read_text().splitlines() if line]
    return {r["document_id"]: r for r in rows}


def rouge2(run_dir: Path, base_dir: str, adapter: str | None, bills: list[dict], settings):
    """ROUGE-2 of each held-out bill's greedy summary (the evaluation worker, in its own
    process)."""
    import subprocess

    from engine.evaluation.worker import read_scores, write_eval_run
    from engine.models.drafting import DraftConfig

    if not read_scores(run_dir):  # not evaluated yet (a kept folder resumes)
        config = DraftConfig(model=base_dir, adapter=adapter, generation=settings)
        rows = [
            {"document_id": b["id"], "text": b["document"], "reference": b["summary"]}
            for b in bills
        ]
        if not (run_dir / "config.json").exists():
            write_eval_run(run_dir, config, rows)
        with open(run_dir / "worker.log", "a", encoding="utf-8") as log:
            command = [sys.executable, "-m", "engine", "eval-worker", str(run_dir), "--no-semantic"]
            subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
        if not read_scores(run_dir):
            raise RuntimeError(f"evaluation in {run_dir} failed: see its worker.log")
    return [r["rouge2"] for r in read_scores(run_dir)]


def order_pool(bills: list[dict], drafts: dict) -> tuple[list[dict], list[str]]:
    """The pool in the app's order (bills, and each one's reason)."""
    import numpy as np
    import pandas as pd

    from engine.data.similarity import default_embedder
    from engine.labelling.ordering import rank

    candidates = pd.DataFrame(
        {
            "document_id": [b["id"] for b in bills],
            "text": [b["document"] for b in bills],
            "draft": [drafts[b["id"]]["summary"] for b in bills],
            "mean_logprob": [drafts[b["id"]]["mean_logprob"] for b in bills],
        }
    )
    vectors = np.asarray(default_embedder()([t[:2000] for t in candidates["text"]]))
    reference = candidates["mean_logprob"].dropna().to_numpy(dtype=float)
    ranked = rank(candidates, vectors, None, reference)
    by_id = {b["id"]: b for b in bills}
    return [by_id[i] for i in ranked["document_id"]], ranked["reason"].tolist()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", help="labels to compare (default: CPU 8,16,32; GPU 32..256)")
    parser.add_argument("--pool", type=int, help="bills to pick from (default: CPU 64, GPU 1024)")
    parser.add_argument("--test", type=int, help="held-out bills (default: CPU 24, GPU 128)")
    parser.add_argument("--max-words", type=int, help="longest bill (default: CPU 250, GPU none)")
    parser.add_argument("--epochs", type=float, default=2.0, help="passes over the N bills")
    parser.add_argument("--preset", help="default: Standard on a GPU, Quick (CPU demo) on a CPU")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--max-new-tokens", type=int, help="default: CPU 48, GPU the preset's")
    parser.add_argument("--seed", type=int, default=7, help="the random picks' shuffle")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, help="also write the printed lines to this file")
    parser.add_argument(
        "--work", type=Path, help="keep the run folders here; a rerun reuses finished runs"
    )
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"{args.data} is absent: nothing to measure.")
        return 0

    import torch

    from engine.models.embedded import default_model_dir
    from engine.models.generation import GenerationSettings
    from engine.stats import bootstrap_ci, paired_bootstrap
    from engine.training.config import PRESETS, TrainConfig

    gpu = torch.cuda.is_available()
    sizes = [int(n) for n in (args.sizes or ("32,64,128,256" if gpu else "8,16,32")).split(",")]
    n_pool = args.pool or (1024 if gpu else 64)
    n_test = args.test or (128 if gpu else 24)
    max_words = args.max_words if args.max_words is not None else (None if gpu else 250)
    preset = args.preset or ("Standard" if gpu else "Quick (CPU demo)")
    out = open(args.out, "w", encoding="utf-8") if args.out else None

    def say(line: str = ""):
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    if out:
        out.write(f"# python bench/active.py {' '.join(sys.argv[1:])}   ({date.today()})\n")
    base_dir = str(default_model_dir())
    changes = {"base_model": base_dir, "max_steps": -1, "epochs": args.epochs}
    changes |= {"train_subset": None, "early_stopping_patience": 0, "rouge_eval_samples": 0}
    for item in args.set:
        field, _, value = item.partition("=")
        try:
            changes[field] = json.loads(value)
        except json.JSONDecodeError:
            changes[field] = value
    config = TrainConfig.from_dict(PRESETS[preset] | changes)
    max_new = args.max_new_tokens or (config.max_new_tokens if gpu else 48)
    settings = GenerationSettings(
        max_new_tokens=max_new, max_input_tokens=config.max_length - max_new, batch_size=16
    )
    sides, _ = split_bills(read_bills(args.data))
    pool = short(sides["train"], max_words, n_pool)
    test = short(sides["test"], max_words, n_test)
    if max(sizes) > len(pool):
        raise SystemExit(f"--sizes asks for {max(sizes)} labels from a pool of {len(pool)}.")
    say(f"machine: {machine()}")
    say(f"versions: {versions()}")
    say(f"load average before: {load()}")
    say(
        f"data: {args.data.name}; pool {len(pool)} train-side bills, {len(test)} held-out "
        f"test-side bills ({f'<= {max_words} words' if max_words else 'any length'})"
    )
    say(
        f"training: preset {preset!r}, {config.method}, lr {config.learning_rate:g}, batch "
        f"{config.batch_size} x {config.grad_accum}, max_length {config.max_length}, "
        f"{config.epochs:g} epochs over the N labelled bills, no validation (last weights), "
        f"seed {config.seed}; evaluation greedy, max_new_tokens {max_new}"
    )
    say()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.work or Path(scratch)
        drafts = draft_pool(tmp / "pool", base_dir, pool, settings)
        ordered, reasons = order_pool(pool, drafts)
        seconds = time.perf_counter() - started
        say(f"ordering the pool (drafting, fact check, embeddings): {seconds:.0f} s")
        shuffled = random.Random(args.seed).sample(pool, len(pool))
        base = rouge2(tmp / "base", base_dir, None, test, settings)
        scores = {"order": {}, "random": {}}
        for n in sizes:
            for name, picks in (("order", ordered), ("random", shuffled)):
                run = tmp / f"{name}-{n}"
                trained = fine_tune(run / "train", config, picks[:n])
                scores[name][n] = rouge2(
                    run / "eval", base_dir, trained["final_dir"], test, settings
                )
                say(
                    f"  N={n:<4} {name:<6} trained {trained['steps']} steps in "
                    f"{trained['wall_s']:.0f} s, ROUGE-2 {bootstrap_ci(scores[name][n]).mean:.3f}"
                )
    say()
    b = bootstrap_ci(base)
    say(f"base model (no labels): ROUGE-2 {b.mean:.3f} [{b.low:.3f}, {b.high:.3f}]")
    say(f"{'N':>5}{'ordered':>24}{'random':>24}  ordered - random (paired), p")
    for n in sizes:
        a, b = bootstrap_ci(scores["order"][n]), bootstrap_ci(scores["random"][n])
        diff, p = paired_bootstrap(scores["random"][n], scores["order"][n])
        say(
            f"{n:>5}{f'{a.mean:.3f} [{a.low:.3f}, {a.high:.3f}]':>24}"
            f"{f'{b.mean:.3f} [{b.low:.3f}, {b.high:.3f}]':>24}  "
            f"{diff.mean:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}], p={p:.3f}"
        )
    means = {k: {n: bootstrap_ci(v).mean for n, v in scores[k].items()} for k in scores}
    best_n = max(sizes, key=lambda n: means["random"][n])
    needed = next((n for n in sizes if means["order"][n] >= means["random"][best_n]), None)
    say(
        f"labels the order needs to match random's best ROUGE-2 ({means['random'][best_n]:.3f} "
        f"at N={best_n}): " + (f"{needed}" if needed else f"not reached within N <= {max(sizes)}")
    )
    kinds = [r.split(":")[0] for r in reasons[: max(sizes)]]
    say(
        f"reasons of the first {max(sizes)} ordered picks: "
        + ", ".join(f"{k} {kinds.count(k)}" for k in sorted(set(kinds)))
    )
    say(f"total wall time {time.perf_counter() - started:.0f} s")
    say(f"load average after: {load()} (above the number of cores: other work shared the CPU)")
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
