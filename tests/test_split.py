"""Grouped, seeded, stable train/validation/test splits."""

import pandas as pd
import pytest

from engine.split import SplitSettings, assign_splits


def units(n_groups=200, per_group=3, split=None):
    rows = [(g * per_group + k, f"g{g}") for g in range(n_groups) for k in range(per_group)]
    return pd.DataFrame(
        {"id": [r[0] for r in rows], "group_key": [r[1] for r in rows], "split": split}
    )


def test_no_cluster_crosses_splits_and_shares_are_met():
    u = units()
    out = assign_splits(u, SplitSettings(seed=3, validation=0.1, test=0.2))
    merged = u.assign(split=out["split"])
    assert (merged.groupby("group_key")["split"].nunique() == 1).all()
    shares = merged["split"].value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.02)
    assert shares["validation"] == pytest.approx(0.1, abs=0.02)


def test_same_seed_same_split_other_seed_differs():
    u = units()
    a = assign_splits(u, SplitSettings(seed=1))
    assert a.equals(assign_splits(u, SplitSettings(seed=1)))
    assert not a["split"].equals(assign_splits(u, SplitSettings(seed=2))["split"])


def test_existing_splits_are_kept_and_pull_their_cluster():
    u = units(n_groups=50, per_group=2)
    first = assign_splits(u, SplitSettings(seed=5))
    # A new member joins a test cluster with no split yet, and new groups arrive.
    test_group = u.loc[first["split"] == "test", "group_key"].iloc[0]
    grown = pd.concat(
        [
            u.assign(split=first["split"]),
            pd.DataFrame(
                {"id": [1000, 1001], "group_key": [test_group, "new"], "split": [None, None]}
            ),
        ],
        ignore_index=True,
    )
    second = assign_splits(grown, SplitSettings(seed=5))
    assert second["split"].iloc[:100].equals(first["split"])
    assert second.loc[second["id"] == 1000, "split"].item() == "test"


def test_cluster_spanning_sides_goes_to_test():
    u = pd.DataFrame({"id": [1, 2], "group_key": ["g", "g"], "split": ["train", "test"]})
    assert assign_splits(u, SplitSettings())["split"].tolist() == ["test", "test"]


def test_bad_shares_are_refused():
    with pytest.raises(ValueError):
        SplitSettings(validation=0.6, test=0.5)
