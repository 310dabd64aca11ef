"""Train/validation/test splits grouped by duplicate cluster, and what training will use.

Whole clusters go to one side, so no near duplicate of a test document is trained on. Splits
follow the data: examples already split keep their side, a new example whose cluster already has
a side joins that side, and new clusters are dealt (in a seeded, deterministic order) to the side
furthest below its share of the whole. A full re-split is refused once a model has been evaluated
on the test split; dataset versions are frozen copies, so an evaluated version never changes.

`split_examples` does this in the store (also `python -m engine split`; admins only, audited);
`training_data_summary` says what a training run would use and what it would leave out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd
import xxhash

from engine.auth import CONSOLE
from engine.errors import TuneloopError

PRIORITY = ("test", "validation", "train")  # when a cluster already spans sides, the first wins
SETTINGS_KEY = "split.settings"  # setting: the last split's SplitSettings, reused by retrains


@dataclass
class SplitSettings:
    seed: int = 13  # same seed and data, same split
    validation: float = 0.1  # share of examples for validation
    test: float = 0.1  # share of examples for the held-out test set

    def __post_init__(self):
        if not (0 <= self.validation < 1 and 0 <= self.test < 1):
            raise TuneloopError("Validation and test shares must each be between 0 and 1.")
        if self.validation + self.test >= 1:
            raise TuneloopError("Validation and test together must leave some data for training.")


def assign_splits(units: pd.DataFrame, settings: SplitSettings, keep: bool = True) -> pd.DataFrame:
    """units: columns id, group_key, split (current; missing as None, NaN or NA). Returns id, split.

    With keep=True a group with any member already split goes wholly to the first side of
    PRIORITY among its members (so a member never sits on the train side of a test duplicate);
    unsplit groups are dealt so each side approaches its share of all the units."""
    if units.empty:
        return pd.DataFrame(
            {"id": pd.Series([], dtype="int64"), "split": pd.Series([], dtype=object)}
        )
    # isin, not notna: under pandas 3 a missing split is NaN, which must never count as a side.
    known = units["split"].isin(PRIORITY) if keep else pd.Series(False, index=units.index)
    rank = units.loc[known, "split"].map(PRIORITY.index)
    group_side = {
        key: PRIORITY[r] for key, r in rank.groupby(units.loc[known, "group_key"]).min().items()
    }
    sizes = units.groupby("group_key").size()
    total = len(units)
    target = {
        "test": round(settings.test * total),
        "validation": round(settings.validation * total),
    }
    target["train"] = max(total - target["test"] - target["validation"], 0)
    taken = dict.fromkeys(PRIORITY, 0)
    for key, side in group_side.items():
        taken[side] += int(sizes[key])
    new_groups = sorted(
        (k for k in sizes.index if k not in group_side),
        key=lambda k: (xxhash.xxh64_intdigest(f"{settings.seed}:{k}".encode()), k),
    )
    for key in new_groups:
        side = max(PRIORITY, key=lambda s: _room(target[s], taken[s]))  # ties: PRIORITY order
        group_side[key] = side
        taken[side] += int(sizes[key])
    return pd.DataFrame(
        {"id": units["id"].to_numpy(), "split": units["group_key"].map(group_side).to_numpy(object)}
    )


def _room(target: int, taken: int) -> float:
    """How far a side is below its target, as a share of it (a side with no target gets none)."""
    return (target - taken) / target if target else float("-inf")


def last_split_settings(con) -> SplitSettings:
    """The settings of the last split, so new data is dealt the way the rest was."""
    from store.splits import get_setting

    saved = get_setting(con, SETTINGS_KEY)
    return SplitSettings(**json.loads(saved)) if saved else SplitSettings()


def split_examples(
    con, settings: SplitSettings | None = None, reset: bool = False, user: dict | None = CONSOLE
) -> dict:
    """Give every eligible example without a side one, grouped by the current duplicate clusters
    (deduplicating first, with the last detection's settings, when documents were added since).
    Examples already split keep their side unless `reset`, which is refused once the test split
    is locked. `settings` default to the last split's. Returns examples per split."""
    from engine.audit import record
    from engine.auth import check
    from engine.data.dedupe import dedupe_documents, last_dedupe_settings
    from store import audit as audit_store
    from store import splits as splits_store
    from store import transaction

    check(user, "split")
    settings = settings or last_split_settings(con)
    if reset and splits_store.is_test_locked(con):
        raise TuneloopError(
            "The test split is locked because a model has been evaluated on it; re-splitting "
            "would make old and new scores incomparable. Split without reset to add new data."
        )
    if splits_store.count_unclustered(con):
        dedupe_documents(con, last_dedupe_settings(con), user=user)
    units = splits_store.split_units(con)
    assigned = assign_splits(units, settings, keep=not reset)
    with transaction(con):
        before = audit_store.split_counts(con)
        if reset:
            splits_store.clear_splits(con)
        splits_store.set_splits(con, assigned)
        splits_store.set_setting(con, SETTINGS_KEY, json.dumps(asdict(settings)))
        after = audit_store.split_counts(con)
        target = "re-split everything" if reset else "new examples"
        record(con, user, "split", target, settings=asdict(settings), before=before, after=after)
    return assigned["split"].value_counts().reindex(PRIORITY[::-1], fill_value=0).to_dict()


def training_data_summary(con) -> dict:
    """What the next training run would use: accepted examples with a summary by side (train,
    validation; test is held out for evaluation), those left out because they have no side yet
    (`unsplit`) or no summary (`no_summary`), examples with a summary still waiting to be
    accepted (`not_accepted`), and whether the test split is locked."""
    from store import splits as splits_store

    return splits_store.accepted_counts(con) | {"test_locked": splits_store.is_test_locked(con)}
