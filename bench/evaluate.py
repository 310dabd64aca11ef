"""Held-out evaluation: the default model before and after a LoRA fine-tune on congress bills.

    python bench/evaluate.py [--preset P] [--set FIELD=VALUE ...] [--train N] [--test N]
                             [--max-words W] [--max-new-tokens N] [--data FILE] [--out FILE]

Measures the target "the fine-tune at least doubles the base model's ROUGE-2 and halves its
unsupported-fact rate on held-out bills", end to end, with the app's own workers in-process:
1. Split ../shared/data/congress119/train.jsonl (or --data) into train/validation/test bills.
   Companion bills (House and Senate versions of one bill) must not sit on two sides, so bills
   are grouped first: documents or summaries that are near duplicates (engine.data.similarity
   MinHash,
   Jaccard >= 0.8 of 5-word shingles), or the same title or summary up to case and punctuation,
   make one group (union-find). engine.data.split deals whole groups to a side by a seeded hash,
   as the app's splits do (seed 13, 5% validation, 10% test). Each side is then shuffled
   (seeded), optionally limited to documents of at most --max-words words, and cut to
   --train / --test bills. The split depends on the data and seed only: every run draws its
   test bills from the same test side.
2. Fine-tune SmolLM2-135M-Instruct with a preset (engine.training.worker, LoRA): on a GPU
   "Standard" over
   the whole training side, on a CPU "Quick (CPU demo)" (24 steps over 48 short bills, ~6 min
   in all on 2 cores). The best checkpoint by validation loss is the fine-tune. --set changes a
   preset field (to fit a time limit: the results file's first line says what was changed).
3. Evaluate base and fine-tune on the same test bills (engine.evaluation.worker: batched greedy
   drafting,
   then ROUGE, MiniLM similarity, unsupported facts), prompts cut to max_length - max_new_tokens
   tokens as at training; max_new_tokens is the preset's unless --max-new-tokens says otherwise.
Prints the machine and versions, training time and tokens/s, evaluation time and documents/s
per model, each score's mean with its bootstrap 95% CI, the paired difference (fine-tune minus
base, engine.evaluation.worker.compare) and the two ratios of the target with paired-bootstrap CIs.
--out FILE writes the same lines to FILE; --keep DIR saves each model's per-document scores and
--from-scores DIR reports them again (re-running the fact check when the bills are at hand).
The split and the two measured steps live in bench/heldout.py.
Results: bench/results/evaluate-cpu.txt, -gpu.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "congress119" / "train.jsonl"
sys.path.insert(0, str(ROOT))

from bench.heldout import evaluate_model, fine_tune, read_bills, short, split_bills  # noqa: E402

# (score, label) in the order printed; has_unsupported's mean is the unsupported-fact rate.
SCORES = (
    ("rouge1", "ROUGE-1"),
    ("rouge2", "ROUGE-2"),
    ("rougeL", "ROUGE-L"),
    ("similarity", "similarity (MiniLM)"),
    ("has_unsupported", "unsupported-fact rate"),
    ("has_unsupported_numbers", "  of numbers/dates/amounts"),
    ("unsupported_facts", "unsupported facts / summary"),
    ("summary_words", "summary words"),
    ("cut_off", "stopped at max_new_tokens"),
)


def ratio_ci(a: list[float], b: list[float], n_resamples: int = 2000, seed: int = 0) -> str:
    """mean(b) / mean(a) with a paired percentile bootstrap 95% CI (the same documents
    resampled for both), as text; resamples where mean(a) is 0 are left out."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not a.any():
        return "undefined (the base mean is 0)"
    idx = np.random.default_rng(seed).integers(0, a.size, (n_resamples, a.size))
    means_a, means_b = a[idx].mean(axis=1), b[idx].mean(axis=1)
    ratios = means_b[means_a > 0] / means_a[means_a > 0]
    low, high = np.quantile(ratios, [0.025, 0.975])
    return f"{b.mean() / a.mean():.2f} [{low:.2f}, {high:.2f}]"


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores"
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads (no GPU)"


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def versions() -> str:
    names = ("torch", "transformers", "trl", "peft", "datasets", "sentence-transformers")
    found = []
    for name in (*names, "rouge-score"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} -")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def interval(d: dict, digits: int) -> str:
    return f"{d['mean']:.{digits}f} [{d['low']:.{digits}f}, {d['high']:.{digits}f}]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", help="default: Standard on a GPU, Quick (CPU demo) on a CPU")
    parser.add_argument("--train", type=int, help="training bills (default: GPU all, CPU 48)")
    parser.add_argument("--test", type=int, help="test bills (default: GPU all, CPU 64)")
    parser.add_argument(
        "--max-words", type=int, help="longest document (default: GPU no limit, CPU 250)"
    )
    parser.add_argument("--max-new-tokens", type=int, help="default: the preset's")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a preset field, e.g. --set epochs=1 (a JSON value or a word)",
    )
    parser.add_argument("--no-semantic", action="store_true", help="skip MiniLM similarity")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, help="also write the printed lines to this file")
    parser.add_argument("--keep", type=Path, help="copy each model's scores.jsonl to this folder")
    parser.add_argument(
        "--from-scores",
        type=Path,
        help="only report the base-/tuned-scores.jsonl that --keep saved in this folder",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="documents per generate call")
    args = parser.parse_args(argv)
    if args.from_scores:
        return report_saved(args.from_scores, args.data)
    if not args.data.exists():
        print(f"{args.data} is absent: nothing to measure.")
        return 0

    import torch

    from engine.models.embedded import DEFAULT_MODEL, default_model_dir
    from engine.models.generation import GenerationSettings
    from engine.training.config import PRESETS, TrainConfig

    gpu = torch.cuda.is_available()
    preset = args.preset or ("Standard" if gpu else "Quick (CPU demo)")
    n_train = args.train if args.train is not None else (None if gpu else 48)
    n_test = args.test if args.test is not None else (None if gpu else 64)
    max_words = args.max_words if args.max_words is not None else (None if gpu else 250)
    out = open(args.out, "w", encoding="utf-8") if args.out else None

    def say(line: str = ""):
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    if out:
        out.write(f"# python bench/evaluate.py {' '.join(sys.argv[1:])}   ({date.today()})\n")
    base_dir = str(default_model_dir())
    changes = {"base_model": base_dir}
    for item in args.set:
        field, _, value = item.partition("=")
        try:
            changes[field] = json.loads(value)
        except json.JSONDecodeError:
            changes[field] = value
    config = TrainConfig.from_dict(PRESETS[preset] | changes)
    max_new = args.max_new_tokens or config.max_new_tokens
    settings = GenerationSettings(
        max_new_tokens=max_new,
        max_input_tokens=config.max_length - max_new,
        batch_size=args.batch_size,
    )

    bills = read_bills(args.data)
    started = time.perf_counter()
    sides, n_groups = split_bills(bills)
    split_s = time.perf_counter() - started
    train = short(sides["train"], max_words, n_train)
    validation = short(sides["validation"], max_words)
    test = short(sides["test"], max_words, n_test)
    limit = f"documents <= {max_words} words" if max_words else "no length limit"
    say(f"machine: {machine()}")
    say(f"versions: {versions()}")
    say(f"load average before: {load()}")
    say(
        f"data: {args.data.name}, {len(bills)} bills in {n_groups} groups (near-duplicate "
        "documents or summaries, same title or summary); whole groups dealt by seed 13: "
        f"train {len(sides['train'])} / validation {len(sides['validation'])} / test "
        f"{len(sides['test'])} ({split_s:.1f} s)"
    )
    say(
        f"used ({limit}): train {len(train)}, validation {len(validation)} "
        f"(loss on <= {config.eval_samples or 'all'}), test {len(test)}"
    )
    lora = f"r {config.lora_r}, alpha {config.lora_alpha}, " if config.method == "lora" else ""
    steps = f"{config.max_steps} steps" if config.max_steps > 0 else f"{config.epochs:g} epochs"
    say(
        f"training: preset {preset!r}: {config.method} ({lora}all-linear), lr "
        f"{config.learning_rate:g} {config.lr_scheduler}, batch {config.batch_size} x "
        f"{config.grad_accum}, max_length {config.max_length}, {steps}, train_subset "
        f"{config.train_subset or 'all'}, eval every {config.eval_every_steps} steps (ROUGE-L on "
        f"{config.rouge_eval_samples}), early stopping patience "
        f"{config.early_stopping_patience}, seed {config.seed}"
    )
    say(
        f"generation: {DEFAULT_MODEL} {'bf16 on the GPU' if gpu else 'fp32 on the CPU'}, "
        f"greedy, max_new_tokens {settings.max_new_tokens}, prompts <= "
        f"{settings.max_input_tokens} tokens (documents cut to fit), batch {settings.batch_size}, "
        f"repetition_penalty {settings.repetition_penalty:g}; similarity "
        f"{'off' if args.no_semantic else 'all-MiniLM-L6-v2 on the CPU'}"
    )
    say()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trained = fine_tune(tmp / "train", config, train, validation)
        say(
            f"training: {trained['steps']} steps in {trained['wall_s']:.0f} s wall (model load, "
            f"steps, validation, saving); optimizer steps {trained['train_seconds']:.0f} s, "
            f"{trained['train_tokens']} tokens, {trained['train_tokens_per_s']:.0f} tokens/s"
        )
        base_rouge = trained["base_rouge_l"]
        best_rouge = trained["rouge_l_at_best"]
        rouge = (
            f"; ROUGE-L {base_rouge:.3f} -> {best_rouge:.3f} on <= "
            f"{config.rouge_eval_samples} validation bills"
            if base_rouge is not None and best_rouge is not None
            else ""
        )
        say(
            f"validation loss {trained['base_eval_loss']:.3f} (base) -> "
            f"{trained['best_eval_loss']:.3f} (best, step {trained['best_step']}){rouge}"
        )
        say()
        semantic = not args.no_semantic
        adapter = trained["final_dir"]
        runs = {
            "base": evaluate_model(tmp / "base", base_dir, None, test, settings, semantic),
            "fine-tuned": evaluate_model(
                tmp / "tuned", base_dir, adapter, test, settings, semantic
            ),
        }
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for name in ("base", "tuned"):
                (args.keep / f"{name}-scores.jsonl").write_bytes(
                    (tmp / name / "scores.jsonl").read_bytes()
                )
    report(runs, say)
    say(reference_check(test))
    say(
        f"load average after: {load()} "
        "(a load above the number of cores means other work shared the CPU)"
    )
    if out:
        out.close()
    return 0


def reference_check(bills: list[dict]) -> str:
    """The same fact check on the reference summaries: what the check flags in summaries
    written by people (CRS adds agencies, acts and dates that the bill text does not name)."""
    from engine.metrics import unsupported_facts
    from engine.stats import bootstrap_ci

    flags = [bool(unsupported_facts(b["summary"], b["document"])) for b in bills]
    ci = bootstrap_ci(flags)
    return (
        f"reference summaries' own unsupported-fact rate: {ci.mean:.3f} [{ci.low:.3f}, "
        f"{ci.high:.3f}] (facts from outside the bill text: agencies, acts, dates)"
    )


def report_saved(folder: Path, data: Path) -> int:
    """The score tables of a run saved with --keep. With the bills at hand, the fact check is
    run again with this version's rules on the saved summaries (ROUGE and similarity are as
    saved)."""
    from engine.evaluation.worker import aggregate
    from engine.metrics import fact_counts, unsupported_facts

    bills = {b["id"]: b for b in read_bills(data)} if data.exists() else {}
    documents = {i: b["document"] for i, b in bills.items()}
    runs = {}
    for name, file in (("base", "base-scores.jsonl"), ("fine-tuned", "tuned-scores.jsonl")):
        lines = (folder / file).read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line]
        for r in rows:
            if r["document_id"] in documents:
                cut = bool(r.get("cut_off"))
                r["unsupported"] = unsupported_facts(
                    r["summary"], documents[r["document_id"]], cut_off=cut
                )
            r |= fact_counts(r["unsupported"])
        runs[name] = {"rows": rows, "summary": aggregate(rows)}
    print(f"fact check {'run again on' if documents else 'as saved for'} the saved summaries")
    report(runs, print)
    if bills:
        print(reference_check([bills[r["document_id"]] for r in runs["base"]["rows"]]))
    return 0


def report(runs: dict, say):
    from engine.evaluation.worker import compare

    if "wall_s" in runs["base"]:
        say(f"{'evaluation':<12}{'bills':>6}{'wall s':>8}{'docs/s':>8}{'tokens/s':>10}{'cut':>5}")
        for name, run in runs.items():
            say(
                f"{name:<12}{len(run['rows']):>6}{run['wall_s']:>8.1f}{run['docs_per_s']:>8.2f}"
                f"{run['tokens_per_s']:>10.1f}{run['cut']:>5}"
            )
        say(
            "(wall: load, generate, score; docs/s and tokens/s: generation only; cut: documents "
            "cut to fit the prompt)"
        )
        say()
    base, tuned = runs["base"], runs["fine-tuned"]
    say(f"{'score (mean, 95% CI)':<28}{'base':>22}{'fine-tuned':>22}  fine-tuned - base, p")
    for name, label in SCORES:
        if name not in base["summary"]:
            continue
        digits = 1 if name == "summary_words" else 3
        diff = compare(base["rows"], tuned["rows"], name)
        say(
            f"{label:<28}{interval(base['summary'][name], digits):>22}"
            f"{interval(tuned['summary'][name], digits):>22}  "
            f"{interval(diff, digits)}, p={diff['p_value']:.3f}"
        )
    say()
    say("target: the fine-tune at least doubles ROUGE-2 and halves the unsupported-fact rate")
    for name, label, target, met in (
        ("rouge2", "ROUGE-2", ">= 2", lambda r: r >= 2),
        ("has_unsupported", "unsupported-fact rate", "<= 0.5", lambda r: r <= 0.5),
        ("has_unsupported_numbers", "  of numbers/dates/amounts", "<= 0.5", lambda r: r <= 0.5),
    ):
        a, b = base["summary"][name]["mean"], tuned["summary"][name]["mean"]
        verdict = ("met" if met(b / a) else "NOT met") if a else "n/a"
        ratio = ratio_ci([r[name] for r in base["rows"]], [r[name] for r in tuned["rows"]])
        say(f"{label} fine-tuned / base: {ratio} (target {target}): {verdict}")
    first = base["rows"][0]["document_id"]
    say()
    say(f"bill {first}, base: {base['rows'][0]['summary'][:300]!r}")
    say(f"bill {first}, fine-tuned: {tuned['rows'][0]['summary'][:300]!r}")


if __name__ == "__main__":
    sys.exit(main())
