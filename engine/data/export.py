"""Export a frozen dataset version: chat-format prompt/completion JSONL and a Hugging Face
dataset on disk (`datasets.load_from_disk(folder)`), one file per split that has examples (a
training run's folder gets train and validation only: the test split never reaches training).
Freezing and exporting from the Data page or the CLI is for admins, and audited."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from engine.auth import CONSOLE
from engine.errors import TuneloopError
from engine.models.prompts import DEFAULT_INSTRUCTION, training_record

SPLITS = ("train", "validation", "test")


def export_rows(
    rows: pd.DataFrame, out_dir: Path, instruction: str = DEFAULT_INSTRUCTION, hf: bool = True
) -> dict:
    """Write `<split>.jsonl` (and, with `hf`, a Hugging Face dataset in `hf/`) under out_dir
    from rows (split, document, summary, example_id), for each split that has rows: no file at
    all for an empty or absent one. Returns the examples per split (0 for those)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts, parts = {}, {}
    for split in SPLITS:
        part = rows[rows["split"] == split]
        records = [
            training_record(d, s, instruction) | {"id": int(i)}
            for d, s, i in zip(part["document"], part["summary"], part["example_id"])
        ]
        counts[split] = len(records)
        if not records:
            continue
        with open(out_dir / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        parts[split] = records
    if hf and parts:
        from datasets import Dataset, DatasetDict

        DatasetDict({k: Dataset.from_list(v) for k, v in parts.items()}).save_to_disk(
            str(out_dir / "hf")
        )
    return counts


def export_dataset(
    con,
    dataset_id: int | None = None,
    out_dir: Path | None = None,
    note: str = "",
    user: dict | None = CONSOLE,
):
    """Export a dataset version (freezing a new one from the accepted, split examples when no id
    is given). Returns (dataset_id, out_dir, counts per split)."""
    from engine.audit import record
    from engine.auth import check
    from engine.paths import exports_dir
    from store import splits as splits_store
    from store import transaction

    check(user, "export")
    frozen = dataset_id is None
    if frozen:
        with transaction(con):
            dataset_id = splits_store.freeze_dataset(con, note)
    rows = splits_store.dataset_rows(con, dataset_id)
    if rows.empty:
        raise TuneloopError(
            f"Dataset version {dataset_id} is empty: accept some examples and split them first "
            "(python -m engine split)."
        )
    out_dir = out_dir or exports_dir() / f"dataset-{dataset_id}"
    counts = export_rows(rows, Path(out_dir))
    record(
        con,
        user,
        "export",
        f"dataset v{dataset_id}",
        frozen=frozen,
        out_dir=str(out_dir),
        after=counts,
    )
    return dataset_id, out_dir, counts
