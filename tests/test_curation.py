"""The curation loop over a real store: import, clean, flag, dedupe, resolve, split, export, CLI."""

import json

import pytest

from engine.__main__ import main as cli
from engine.data.clean import CleanSettings
from engine.data.curation import clean_documents, preview_cleaning
from engine.data.dedupe import resolve_all, resolve_cluster
from engine.data.export import export_dataset
from engine.data.imports import import_file
from engine.data.samples import SAMPLE_FILE, load_sample_if_empty
from engine.data.sources import ImportProblem
from engine.data.split import SplitSettings, split_examples
from store import documents as docs
from store import duplicates as dups
from store import examples as ex
from store import splits
from tests.conftest import write_jsonl

BILL = (
    "SECTION 1. SHORT TITLE. This Act may be cited as the Safe Roads Act of 2025. "
    "SEC. 2. GRANTS. The Secretary of Transportation shall award grants to States to improve "
    "pedestrian crossings near schools, with priority to States with high injury rates. "
    "SEC. 3. REPORT. Not later than one year after enactment the Secretary shall report to "
    "Congress on the number of crossings improved and the change in injuries. "
)


def test_import_is_idempotent_and_counts_new_rows(con, tmp_path):
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"document": BILL, "summary": "Grants for safer school crossings."},
            {"document": BILL + " SEC. 4. FUNDING.", "summary": None},
        ],
    )
    first = import_file(con, path)
    assert (first.n_read, first.n_new_documents, first.n_new_examples) == (2, 2, 2)
    again = import_file(con, path)
    assert (again.n_new_documents, again.n_new_examples) == (0, 0)
    assert "already stored" in again.message()
    assert ex.count_examples(con, ex.ExampleFilter(has_summary=False)) == 1


def test_bad_file_changes_nothing_already_stored(con, tmp_path):
    import_file(con, write_jsonl(tmp_path / "good.jsonl", [{"text": BILL, "summary": "s"}]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": BILL + " more", "summary": "t"}) + "\n{broken\n")
    with pytest.raises(ImportProblem, match="line 2"):
        import_file(con, bad)
    assert ex.count_examples(con) == 1 and docs.count_documents(con) == 1
    report = import_file(con, bad, skip_bad_rows=True)
    assert report.n_new_examples == 1 and len(report.skipped) == 1


def test_clean_keeps_raw_text_versions_and_flags(con, tmp_path):
    header = "SMITH & PARTNERS LLP - CONFIDENTIAL"
    dirty = f"{header}\nThe plaintiff slipped on a wet floor and suf-\nfered a fracture.\n\f" * 3
    import_file(
        con,
        write_jsonl(
            tmp_path / "d.jsonl",
            [{"text": dirty, "summary": "Too short"}, {"text": "Tiny.", "summary": "x"}],
        ),
    )
    preview = preview_cleaning(con, CleanSettings(), limit=0)
    assert preview.documents == [] and preview.n_documents == 2
    report = clean_documents(con)
    assert report.n_changed == preview.n_changed >= 1  # the preview counts what Apply changes
    assert preview_cleaning(con, CleanSettings()).n_changed == 0  # nothing left to change
    doc = docs.get_document(con, docs.iter_texts(con).__next__()["id"].iloc[0])
    cleaned = [r for r in ex.page_examples(con, ex.ExampleFilter()).itertuples()]
    texts = {docs.get_document(con, r.document_id)["clean_text"] for r in cleaned}
    assert any("suffered" in t and header not in t for t in texts)
    assert all(docs.get_document(con, r.document_id)["raw_text"] for r in cleaned)
    assert doc["clean_version"] in (0, 1)
    assert ex.count_examples(con, ex.ExampleFilter(flag="short_document")) >= 1


def test_sample_set_loads_with_planted_duplicates(con):
    assert load_sample_if_empty(con)
    assert not load_sample_if_empty(con)
    n_clusters, _ = dups.count_clusters(con)
    assert n_clusters >= 4  # the sample plants exact and near duplicates
    assert SAMPLE_FILE.exists()


def test_resolution_and_grouped_split_and_export(con, tmp_path):
    load_sample_if_empty(con)
    cluster = dups.cluster_ids(con)[0]
    members = dups.cluster_members(con, cluster)
    keep = int(members["id"].iloc[-1])
    assert resolve_cluster(con, cluster, keep) == len(members) - 1
    resolve_all(con, "longest")
    for cid in dups.cluster_ids(con):
        assert (dups.cluster_members(con, cid)["status"] != "rejected").sum() <= 1
    counts = split_examples(con, SplitSettings(seed=1, validation=0.2, test=0.2))
    assert counts["test"] > 0 and counts["validation"] > 0 and counts["train"] > 0
    ex.set_status(con, ex.ids_where(con, ex.ExampleFilter(statuses=("pending",))), "accepted")
    dataset_id, out, written = export_dataset(con, out_dir=tmp_path / "export")
    assert (
        sum(written.values())
        == splits.list_datasets(con)["n_train"].iloc[0] + written["validation"] + written["test"]
    )
    record = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert record["prompt"][0]["role"] == "user" and record["completion"][0]["role"] == "assistant"
    from datasets import load_from_disk

    assert len(load_from_disk(str(out / "hf"))["train"]) == written["train"]


def test_split_never_separates_a_cluster(con):
    load_sample_if_empty(con)
    split_examples(con, SplitSettings(seed=7, validation=0.3, test=0.3))
    sides = con.execute(
        """SELECT d.cluster_id, count(DISTINCT e.split) FROM examples e
           JOIN documents d ON d.id = e.document_id WHERE e.split IS NOT NULL
           GROUP BY 1 HAVING count(DISTINCT e.split) > 1"""
    ).fetchall()
    assert sides == []


def test_reset_refused_once_test_split_locked(con):
    load_sample_if_empty(con)
    split_examples(con)
    splits.set_setting(con, splits.TEST_LOCK, "1")
    with pytest.raises(ValueError, match="locked"):
        split_examples(con, reset=True)


def test_cli_runs_the_whole_loop(home, tmp_path, capsys):
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"article": BILL, "abstract": "Grants for crossings."},
            {"article": BILL.replace("2025", "2026"), "abstract": "Grants for crossings (2026)."},
            {
                "article": "An unrelated document about a dog bite in a public park in 2021. " * 5,
                "abstract": "A dog bite.",
            },
        ],
    )
    assert cli(["import", str(path), "--status", "accepted"]) == 0
    assert cli(["clean"]) == 0
    assert cli(["dedupe"]) == 0
    assert cli(["split", "--test", "0.34"]) == 0
    assert cli(["export", "--out", str(tmp_path / "out")]) == 0
    assert cli(["stats"]) == 0
    out = capsys.readouterr().out
    assert "3 new documents" in out and "1 duplicate clusters" in out
    assert cli(["import", str(tmp_path / "missing.jsonl")]) == 1
    assert "error:" in capsys.readouterr().err


def test_congress_train_imports_3397_examples(con, congress_train):
    report = import_file(con, congress_train)
    assert report.n_new_examples == 3397
    assert ex.count_examples(con, ex.ExampleFilter(has_summary=True)) == 3397


@pytest.mark.slow
def test_token_counts_flag_documents_over_the_context(con, home, tmp_path):
    from engine.data.curation import count_tokens
    from engine.models.embedded import default_model_dir

    long_doc = "The court held that the landlord owed a duty of care to the tenant. " * 1200
    import_file(
        con,
        write_jsonl(
            tmp_path / "t.jsonl",
            [
                {"text": long_doc, "summary": "Landlord owed a duty of care."},
                {"text": BILL, "summary": "Grants for school crossings."},
            ],
        ),
    )
    assert count_tokens(con, default_model_dir()) == 8192
    flagged = ex.page_examples(con, ex.ExampleFilter(flag="over_context"))
    assert flagged["n_words"].tolist() == [len(long_doc.split())]


def curate_app():
    from tests.conftest import signed_in_app

    return signed_in_app("ada", "admin", "pages/curate.py")


def test_curate_a_second_click_of_save_is_a_success(home):
    """Double-clicking Save: the second submit carries the version the first one replaced."""
    from engine.paths import db_path
    from store import connect

    at = curate_app()
    con = connect(db_path())
    a = int(ex.page_examples(con, ex.ExampleFilter(has_summary=True))["id"].iloc[0])
    at.number_input(key="curate_open").set_value(a).run()
    opened = at.session_state[f"curate_base_{a}"]
    at.text_area(key=f"curate_summary_{a}").input("Saved once, clicked twice.")
    at.button(key=f"FormSubmitter:curate_edit_{a}-Save").click().run()
    at.session_state[f"curate_base_{a}"] = opened  # the second click, sent before the reload
    at.text_area(key=f"curate_summary_{a}").input("Saved once, clicked twice.")
    at.button(key=f"FormSubmitter:curate_edit_{a}-Save").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.toast] == [f"Saved example {a}"]
    state = ex.get_state(con, a)
    assert (state["summary"], state["version"]) == ("Saved once, clicked twice.", opened + 1)


@pytest.mark.e2e
def test_curate_opens_the_record_chosen_last(browser, tmp_path):
    """A typed id, then a ticked row, then a typed id again: the editor follows each."""
    from tests.browser import App, add_users, data_folder, expect, go_to, open_number

    home = tmp_path / "home"
    with data_folder(home) as con:
        add_users(con, {"ada": "admin"})
        rows = ex.page_examples(con, ex.ExampleFilter(), 0, 50)
    titles = [t or f"Example {i}" for t, i in zip(rows["title"], rows["id"])]
    label = "Open example id (0: the row ticked above, else the first)"
    with App(home, browser) as app:
        page = app.log_in("ada")
        go_to(page, "Curate")
        heading = page.get_by_role("heading", level=3)
        open_number(page, label, int(rows["id"].iloc[3]))
        expect(heading.filter(has_text=titles[3])).to_be_visible()
        grid = page.get_by_test_id("stDataFrame")
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 18, box["y"] + 35 + 35 * 1 + 17)  # row 1's tick box
        expect(heading.filter(has_text=titles[1])).to_be_visible()
        expect(page.get_by_role("spinbutton", name=label)).to_have_value("0")
        open_number(page, label, int(rows["id"].iloc[2]))
        expect(heading.filter(has_text=titles[2])).to_be_visible()
        page.get_by_role("textbox", name="Reference summary").fill("Saved by a double click.")
        page.get_by_role("button", name="Save").dblclick()
        expect(page.get_by_text("Saved example")).to_be_visible()
        expect(page.get_by_text("your edit was not saved")).to_have_count(0)
    with data_folder(home) as con:
        state = ex.get_state(con, int(rows["id"].iloc[2]))
    assert state["summary"] == "Saved by a double click."
