"""The shareable report and the word-level diff: self-contained HTML with the comparison's
figures and charts, the documents where B lost most first, and summaries marked where they
depart from the reference; the CLI writes it."""

from __future__ import annotations

import re

import store
from engine.__main__ import main
from engine.evaluation.comparison import compare_runs
from engine.evaluation.report import comparison_html, diff_html, word_diff
from engine.paths import db_path
from tests.test_evaluation import planted_store


def test_word_diff_marks_what_the_reference_does_not_say():
    marked = word_diff("The bill funds roads in Ohio.", "This bill funds roads.")
    assert [w for w, same in marked if not same] == ["The", "in", "Ohio."]
    assert diff_html("<b>roads</b>", "roads") == "<mark>&lt;b&gt;roads&lt;/b&gt;</mark>"


def test_the_report_is_self_contained_and_leads_with_the_losses(con):
    planted_store(con)
    con.execute(
        "UPDATE eval_results SET rougeL = 0.01 WHERE run_id = 'eval-better' AND example_id = 4"
    )
    html = comparison_html(compare_runs(con, "eval-base", "eval-better"))
    assert "<script" not in html and not re.search(r"(src|href)=\"https?:", html)
    assert html.count("<svg") == 2  # distributions and the per-document scatter
    assert "better against base" in html and "ROUGE-2" in html
    worst = html.split("Where B lost most")[1]
    assert worst.index("example 4") < worst.index("example 0")  # the loss comes first


def test_cli_compares_two_models_and_writes_the_report(home, capsys):
    con = store.connect(db_path())
    planted_store(con)
    con.close()
    out = home / "report.html"
    assert main(["compare", "--models", "base", "better", "--report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "A = base" in printed and "ROUGE-L" in printed and out.read_text().startswith("<!doctype")
    )
    assert main(["promote", "worse"]) == 1  # it does not beat production: refused
    assert "does not beat" in capsys.readouterr().err
