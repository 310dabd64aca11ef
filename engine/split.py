"""Train/validation/test splits grouped by duplicate cluster.

Whole clusters go to one side, so no near duplicate of a test document is trained on. Assignment
is deterministic for a seed: groups are ordered by a seeded hash and dealt out until each split
reaches its share. Examples already split keep their side (new ones are dealt around them), so
a test split stays fixed once a model has been evaluated on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import xxhash

PRIORITY = ("test", "validation", "train")  # when a cluster already spans sides, the first wins


@dataclass
class SplitSettings:
    seed: int = 13  # same seed and data, same split
    validation: float = 0.1  # share of examples for validation
    test: float = 0.1  # share of examples for the held-out test set

    def __post_init__(self):
        if not (0 <= self.validation < 1 and 0 <= self.test < 1):
            raise ValueError("Validation and test shares must each be between 0 and 1.")
        if self.validation + self.test >= 1:
            raise ValueError("Validation and test together must leave some data for training.")


def assign_splits(units: pd.DataFrame, settings: SplitSettings, keep: bool = True) -> pd.DataFrame:
    """units: columns id, group_key, split (current, may be null). Returns id, split.

    With keep=True, a group with any member already split goes wholly to the highest-priority
    side among its members; the rest are dealt so each side approaches its share."""
    if units.empty:
        return pd.DataFrame({"id": [], "split": []})
    current = units["split"].where(units["split"].notna(), None) if keep else None
    group_split: dict[str, str] = {}
    if keep:
        for key, split in zip(units["group_key"], current):
            if split is not None and (
                key not in group_split or PRIORITY.index(split) < PRIORITY.index(group_split[key])
            ):
                group_split[key] = split
    sizes = units.groupby("group_key").size()
    total = len(units)
    taken = {s: int(sizes[[k for k, v in group_split.items() if v == s]].sum()) for s in PRIORITY}
    target = {
        "test": round(settings.test * total),
        "validation": round(settings.validation * total),
    }
    new_groups = sorted(
        (k for k in sizes.index if k not in group_split),
        key=lambda k: xxhash.xxh64_intdigest(f"{settings.seed}:{k}".encode()),
    )
    for key in new_groups:
        side = next((s for s in ("test", "validation") if taken[s] < target[s]), "train")
        group_split[key] = side
        taken[side] += int(sizes[key])
    return pd.DataFrame({"id": units["id"], "split": units["group_key"].map(group_split)})


def split_examples(con, settings: SplitSettings = SplitSettings(), reset: bool = False) -> dict:
    """Assign splits in the store, grouped by the current duplicate clusters (deduplicating first
    when documents were added since the last pass). Returns examples per split."""
    from engine.duplicates import dedupe_documents
    from store import splits as splits_store
    from store import transaction

    if reset and splits_store.get_setting(con, splits_store.TEST_LOCK) == "1":
        raise ValueError(
            "The test split is locked because a model has been evaluated on it; re-splitting "
            "would make old and new scores incomparable. Split without reset to add new data."
        )
    if splits_store.count_unclustered(con):
        dedupe_documents(con)
    units = splits_store.split_units(con)
    assigned = assign_splits(units, settings, keep=not reset)
    with transaction(con):
        if reset:
            splits_store.clear_splits(con)
        splits_store.set_splits(con, assigned)
    return assigned["split"].value_counts().reindex(PRIORITY[::-1], fill_value=0).to_dict()
