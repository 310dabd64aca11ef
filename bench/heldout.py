"""Held-out bills for bench/evaluate.py and the slow end-to-end test: a split that keeps
companion bills on one side, and the two steps measured, fine-tuning in-process with
engine.training.worker and summarizing and scoring with engine.evaluation.worker."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path


def read_bills(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def split_bills(
    bills: list[dict], seed: int = 13, validation: float = 0.05, test: float = 0.1
) -> tuple[dict[str, list[dict]], int]:
    """({"train", "validation", "test"}: bills in a seeded order, number of groups). Bills whose
    documents or summaries are near duplicates, or that share a title or a summary up to case
    and punctuation, are one group, and a group goes wholly to one side."""
    import pandas as pd

    from engine.data.similarity import (
        DuplicatePair,
        cluster_labels,
        find_duplicates,
        normalized_hash,
    )
    from engine.data.split import SplitSettings, assign_splits

    pairs = []
    for field in ("document", "summary"):
        pairs += find_duplicates([b[field] for b in bills])[1]
    for field in ("title", "summary"):
        first: dict[str, int] = {}
        for i, b in enumerate(bills):
            key = normalized_hash(b.get(field) or f"no {field} {i}")
            if key in first:
                pairs.append(DuplicatePair(first[key], i, "exact", 1.0))
            first.setdefault(key, i)
    labels = cluster_labels(len(bills), pairs)
    units = pd.DataFrame(
        {"id": range(len(bills)), "group_key": [str(x) for x in labels], "split": None}
    )
    sides = assign_splits(units, SplitSettings(seed, validation, test), keep=False)["split"]
    out: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for bill, side in zip(bills, sides):
        out[side].append(bill)
    for side, rows in out.items():
        random.Random(f"{seed}:{side}").shuffle(rows)
    return out, len(set(labels))


def short(bills: list[dict], max_words: int | None, n: int | None = None) -> list[dict]:
    """The first n bills whose documents have at most max_words words (None: no limit)."""
    kept = [b for b in bills if max_words is None or len(b["document"].split()) <= max_words]
    return kept[:n] if n is not None else kept


def write_train_run(run_dir: Path, config, train: list[dict], validation: list[dict]) -> Path:
    """A training run folder as the app exports it: config.json, train and validation JSONL."""
    from engine.models.prompts import training_record

    run_dir.mkdir(parents=True, exist_ok=True)
    for name, bills in (("train", train), ("validation", validation)):
        with open(run_dir / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for b in bills:
                record = training_record(b["document"], b["summary"], config.instruction)
                f.write(json.dumps(record | {"id": b["id"]}) + "\n")
    (run_dir / "config.json").write_text(config.to_json())
    return run_dir


def fine_tune(run_dir: Path, config, train: list[dict], validation: list[dict]) -> dict:
    """Train in-process; returns the run's metrics plus wall_s (load, steps, evals, saving)."""
    from engine.training.worker import train as run_train

    write_train_run(run_dir, config, train, validation)
    started = time.perf_counter()
    state = run_train(run_dir)
    status = json.loads((run_dir / "status.json").read_text())
    if state != "succeeded":
        raise RuntimeError(f"training {state}: {status.get('reason')}")
    return status["metrics"] | {"wall_s": time.perf_counter() - started}


def evaluate_model(
    run_dir: Path, model: str, adapter: str | None, bills: list[dict], settings, semantic: bool
) -> dict:
    """Summarize and score the bills with engine.evaluation.worker; returns {"rows" (scores.jsonl,
    in
    bill order), "summary", "wall_s", "docs_per_s", "tokens_per_s" (generation only), "cut"}."""
    from engine.evaluation.worker import read_scores, run_evaluation, write_eval_run
    from engine.jobs.runfolder import read_events
    from engine.models.drafting import DraftConfig

    config = DraftConfig(model=model, adapter=adapter, generation=settings)
    rows = [
        {"document_id": b["id"], "text": b["document"], "reference": b["summary"]} for b in bills
    ]
    write_eval_run(run_dir, config, rows)
    started = time.perf_counter()
    state = run_evaluation(run_dir, semantic=semantic)
    wall = time.perf_counter() - started
    if state != "succeeded":
        raise RuntimeError(f"evaluation {state}")
    events = read_events(run_dir)[0]  # the last generation figures, not the scoring phase's
    progress = [e for e in events if e["type"] == "progress" and "docs_per_s" in e][-1]
    return {
        "rows": read_scores(run_dir),
        "summary": json.loads((run_dir / "summary.json").read_text()),
        "wall_s": wall,
        "docs_per_s": progress["docs_per_s"],
        "tokens_per_s": progress["tokens_per_s"],
        "cut": progress["truncated"],
    }
