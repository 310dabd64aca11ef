"""Grouped, seeded, stable train/validation/test splits that follow the data, and the summary of
what training uses."""

import random
import string
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import store
from engine.data.dedupe import count_to_reject, resolve_all
from engine.data.imports import import_file
from engine.data.samples import load_sample_if_empty
from engine.data.split import (
    SplitSettings,
    assign_splits,
    last_split_settings,
    split_examples,
    training_data_summary,
)
from engine.jobs import runfolder
from engine.paths import db_path
from store import evals as evals_store
from store import examples as ex
from store import splits
from tests.conftest import write_jsonl


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


# --- Splits that follow the data, in the store -------------------------------------------------


def fake_bills(n: int, start: int = 0) -> list[dict]:
    """Documents of random words: no two are near duplicates of each other or of the sample."""
    rng = random.Random(start)
    words = ["".join(rng.choices(string.ascii_lowercase, k=7)) for _ in range(4000)]
    return [
        {
            "text": f"Bill {start + i}. " + " ".join(rng.choices(words, k=80)),
            "summary": f"Summary of bill {start + i}.",
        }
        for i in range(n)
    ]


def import_accepted(con, tmp_path, rows, name="new.jsonl") -> list[int]:
    """Import rows as accepted examples; return their example ids."""
    import_file(con, write_jsonl(tmp_path / name, rows), status="accepted", source_name=name)
    return ex.ids_where(con, ex.ExampleFilter(sources=(name,)))


def sides(con) -> dict[int, str | None]:
    return dict(con.execute("SELECT id, split FROM examples").fetchall())


def accepted_unsplit(con) -> int:
    return training_data_summary(con)["unsplit"]


def test_missing_split_from_the_store_is_never_a_side():
    """The bug: pandas 3 reads a NULL split as NaN, which was taken for an existing side, so new
    examples stayed unsplit forever."""
    units = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "group_key": ["a", "b", "c", "a"],
            "split": pd.Series(["train", None, None, None], dtype="str"),
        }
    )
    assert pd.isna(units["split"].iloc[1])  # NaN, not None
    out = assign_splits(units, SplitSettings())
    assert out["split"].notna().all()
    assert out["split"].tolist()[0] == "train" and out["split"].tolist()[3] == "train"
    with_na = units.assign(split=pd.Series(["test", pd.NA, pd.NA, pd.NA], dtype="string"))
    assert assign_splits(with_na, SplitSettings())["split"].tolist()[3] == "test"


def test_new_groups_are_dealt_towards_the_shares_of_the_whole_and_old_ones_stay():
    settings = SplitSettings(seed=4, validation=0.15, test=0.2)
    old = units(n_groups=40, per_group=1)
    first = assign_splits(old, settings)
    grown = pd.concat(
        [old.assign(split=first["split"]), units(n_groups=400, per_group=1).iloc[40:]],
        ignore_index=True,
    )
    second = assign_splits(grown, settings)
    assert second["split"].iloc[:40].tolist() == first["split"].tolist()
    assert second["split"].notna().all()
    shares = second["split"].value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.01)
    assert shares["validation"] == pytest.approx(0.15, abs=0.01)
    assert second.equals(assign_splits(grown, settings))  # deterministic


def test_new_data_gets_a_side_after_the_first_split_and_old_examples_keep_theirs(con, tmp_path):
    load_sample_if_empty(con)  # imported, deduplicated and split
    before = {i: s for i, s in sides(con).items() if s is not None}
    new = import_accepted(con, tmp_path, fake_bills(100))
    assert accepted_unsplit(con) == 100
    counts = split_examples(con)
    after = sides(con)
    assert {i: after[i] for i in before} == before
    assert all(after[i] in ("train", "validation", "test") for i in new)
    assert accepted_unsplit(con) == 0
    total = sum(counts.values())
    assert counts["test"] / total == pytest.approx(0.1, abs=0.02)
    assert counts["validation"] / total == pytest.approx(0.1, abs=0.02)
    new_sides = pd.Series([after[i] for i in new]).value_counts()
    assert new_sides["train"] > new_sides["test"] > 0 and new_sides["validation"] > 0


def test_new_data_is_dealt_with_the_last_splits_settings(con, tmp_path):
    import_accepted(con, tmp_path, fake_bills(50), "first.jsonl")
    split_examples(con, SplitSettings(seed=2, validation=0.2, test=0.3))
    new = import_accepted(con, tmp_path, fake_bills(150, start=50), "second.jsonl")
    counts = split_examples(con)  # no settings: the last split's
    assert last_split_settings(con) == SplitSettings(seed=2, validation=0.2, test=0.3)
    assert counts["test"] == pytest.approx(60, abs=3)
    assert counts["validation"] == pytest.approx(40, abs=3)
    assert all(sides(con)[i] is not None for i in new)


def test_a_new_member_of_a_split_cluster_joins_its_side(con, tmp_path):
    load_sample_if_empty(con)
    test_row = con.execute(
        """SELECT e.id, d.clean_text FROM examples e JOIN documents d ON d.id = e.document_id
           WHERE e.split = 'test' ORDER BY e.id LIMIT 1"""
    ).fetchone()
    near = test_row[1] + " The parties agreed to a further hearing."
    new = import_accepted(
        con,
        tmp_path,
        [{"text": near, "summary": "A near copy of a test case."}] + fake_bills(60),
    )
    split_examples(con)
    query = "SELECT id FROM examples WHERE summary = 'A near copy of a test case.'"
    near_id = con.execute(query).fetchone()[0]
    assert sides(con)[near_id] == "test"
    assert all(sides(con)[i] is not None for i in new)
    crossing = con.execute(
        """SELECT d.cluster_id FROM examples e JOIN documents d ON d.id = e.document_id
           WHERE e.split IS NOT NULL AND e.status <> 'rejected'
           GROUP BY 1 HAVING count(DISTINCT e.split) > 1"""
    ).fetchall()
    assert crossing == []


def test_an_evaluated_dataset_versions_test_split_never_changes(con, tmp_path):
    load_sample_if_empty(con)
    v1 = splits.freeze_dataset(con, "evaluated")
    evals_store.add_evaluation(con, "eval-1", "base", v1, 1, {})
    frozen = splits.dataset_rows(con, v1)
    assert (frozen["split"] == "test").sum() > 0
    assert training_data_summary(con)["test_locked"]
    with pytest.raises(ValueError, match="locked"):
        split_examples(con, reset=True)
    import_accepted(con, tmp_path, fake_bills(80))
    split_examples(con)
    # Edits after the freeze reach neither the copy nor its test split.
    test_id = int(frozen.loc[frozen["split"] == "test", "example_id"].iloc[0])
    ex.update_summary(con, test_id, "Changed after the evaluation.")
    v2 = splits.freeze_dataset(con, "after new data")
    assert splits.dataset_rows(con, v1).equals(frozen)
    assert splits.dataset_counts(con, v1) == tuple(
        int((frozen["split"] == s).sum()) for s in ("train", "validation", "test")
    )
    new_rows = splits.dataset_rows(con, v2).set_index("example_id")
    old_test = frozen.loc[frozen["split"] == "test", "example_id"]
    assert (new_rows.loc[old_test, "split"] == "test").all()  # still test in the newer version
    assert len(new_rows) == len(frozen) + 80


def test_the_lock_holds_without_evaluations_when_set_by_hand(con):
    assert not splits.is_test_locked(con)
    splits.set_setting(con, splits.TEST_LOCK, "1")
    assert splits.is_test_locked(con)


def test_training_data_summary_counts_what_training_uses_and_leaves_out(con, tmp_path):
    ids = import_accepted(con, tmp_path, fake_bills(10))
    split_examples(con, SplitSettings(seed=1, validation=0.2, test=0.2))
    more = import_accepted(con, tmp_path, fake_bills(3, start=10), "more.jsonl")
    import_file(con, write_jsonl(tmp_path / "p.jsonl", fake_bills(4, start=20)), source_name="p")
    no_summary = [{"text": r["text"]} for r in fake_bills(2, start=30)]
    import_file(con, write_jsonl(tmp_path / "n.jsonl", no_summary), status="accepted")
    ex.set_status(con, [ids[0]], "rejected")
    ex.set_status(con, [more[0]], "needs-edit")
    split_on = pd.Series(sides(con))[ids[1:]].value_counts()
    assert training_data_summary(con) == {
        "train": int(split_on.get("train", 0)),
        "validation": int(split_on.get("validation", 0)),
        "test": int(split_on.get("test", 0)),
        "unsplit": 2,  # accepted after the split
        "no_summary": 2,
        "not_accepted": 5,  # 4 pending + 1 needing an edit
        "test_locked": False,
    }
    assert sum(split_on) == 9


def test_one_click_retrain_splits_new_accepted_data_first(con, home, tmp_path, monkeypatch):
    from engine.training.config import PRESETS, TrainConfig
    from engine.training.runs import remember_good_config, retrain_latest
    from store import registry as reg_store

    started = []
    monkeypatch.setattr(runfolder, "start_worker", lambda run_dir, *a, **k: started.append(run_dir))
    load_sample_if_empty(con)
    reg_store.register_model(con, "base", "full", str(tmp_path / "base"))
    remember_good_config(con, TrainConfig.from_dict(PRESETS["Quick (CPU demo)"]), "base")
    new = import_accepted(con, tmp_path, fake_bills(100))
    assert accepted_unsplit(con) == 100

    retrain_latest(con, {"name": "admin", "role": "admin"})
    assert accepted_unsplit(con) == 0
    dataset_id = int(splits.list_datasets(con)["id"].iloc[0])
    frozen = splits.dataset_rows(con, dataset_id)
    assert set(new) <= set(frozen["example_id"])
    summary = training_data_summary(con)
    assert len(frozen) == summary["train"] + summary["validation"] + summary["test"]
    assert len(started) == 1
    lines = (Path(started[0]) / "train.jsonl").read_text().splitlines()
    assert len(lines) == summary["train"]


def test_count_to_reject_is_what_resolve_all_rejects(con):
    load_sample_if_empty(con)
    n = count_to_reject(con)
    assert n > 0
    assert resolve_all(con, "accepted") == n
    assert count_to_reject(con) == 0


# --- The widgets that show and act on it (AppTest, without the login frame) --------------------


def page(path: str | None = None, script: str | None = None, user: str = "rita") -> AppTest:
    """A page run inside the app's frame, signed in as an admin through the session cookie the
    login form would have handed out; or a bare script with the user set."""
    if script:
        at = AppTest.from_string(script)
        at.default_timeout = 120
        at.session_state["user"] = {"name": user, "role": "admin"}
        return at.run()
    from tests.conftest import signed_in_app

    return signed_in_app(user, "admin", path)


def test_training_data_ui_says_what_is_left_out_and_splits_it_now(home, tmp_path):
    at = page(
        script="from ui.common import db\nfrom ui.training_data import training_data_ui\n"
        "training_data_ui(db())\n"
    )
    assert not at.exception, at.exception
    assert not at.warning and not [b for b in at.button if b.key == "train_split_now"]
    con = store.connect(db_path())  # same process: the app's database instance
    import_accepted(con, tmp_path, fake_bills(100))
    at.run()
    assert at.warning[0].value.startswith("100 accepted examples are not split yet")
    assert at.metric[3].value == "100"
    at.button(key="train_split_now").click().run()
    assert not at.exception, at.exception
    assert accepted_unsplit(con) == 0
    assert at.metric[3].value == "0" and not at.warning  # drawn after the split
    assert "Split 100 new accepted examples" in at.toast[0].value
    summary = training_data_summary(con)
    assert [m.value for m in at.metric[:3]] == [
        str(summary[s]) for s in ("train", "validation", "test")
    ]


def test_split_tab_shows_the_state_after_the_split(home, tmp_path):
    at = page("pages/data.py")
    con = store.connect(db_path())
    import_accepted(con, tmp_path, fake_bills(20))
    at.run()
    assert at.metric[-1].value == "20"
    at.number_input(key="data_split_test").set_value(0.2)
    next(b for b in at.button if b.label == "Split").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("20 accepted examples got a side")
    assert at.metric[-1].value == "0"  # the summary above the form shows the result
    assert last_split_settings(con).test == 0.2


def test_duplicates_resolve_all_asks_first_then_shows_the_state_after(home):
    at = page("pages/duplicates.py")
    con = store.connect(db_path())
    rejected = "SELECT count(*) FROM examples WHERE status = 'rejected' AND updated_by = 'rita'"
    n = count_to_reject(con)
    assert n > 0 and all(" 2 kept" in o for o in at.selectbox(key="dup_cluster").options)
    at.button(key="dup_resolve_all").click().run()
    assert at.warning[0].value == f"Reject {n} duplicate examples? Each cluster keeps one."
    assert con.execute(rejected).fetchone()[0] == 0  # nothing happens before the confirmation
    at.button(key="dup_confirm_yes").click().run()
    assert not at.exception, at.exception
    assert con.execute(rejected).fetchone()[0] == n  # by the signed-in user
    assert at.toast[0].value == f"Rejected {n} duplicate examples."
    assert all(" 1 kept" in o for o in at.selectbox(key="dup_cluster").options)
    assert not at.warning and at.button(key="dup_resolve_all").disabled
