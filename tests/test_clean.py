"""Text cleaning and quality flags: each rule, what it must leave alone, idempotence, and a run
over the real BillSum sample (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.clean import HUNK_GAP, CleanSettings, clean_text, diff_preview, repeated_lines
from engine.data.quality import FLAG_DESCRIPTIONS, quality_flags

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BILLSUM = SHARED_DATA / "billsum_sample" / "us_train_100.jsonl"

CASE = (
    "The plaintiff, Maria Lopez, alleges that on March 3, 2021, she slipped on an unmarked wet "
    "floor in the produce aisle of the defendant's grocery store in Fresno, California. She "
    "claims that store employees had mopped the floor about twenty minutes earlier, failed to "
    "place any warning signs, and ignored a customer's report of the hazard. As a result of the "
    "fall she suffered a fractured left wrist, required surgery, and missed eleven weeks of work "
    "as a dental hygienist. She seeks damages for medical expenses, lost wages, and pain and "
    "suffering, asserting that the defendant breached its duty of ordinary care under "
    "California premises liability law."
)
CASE_SUMMARY = (
    "A shopper who broke her wrist after slipping on an unmarked wet floor sues the grocery "
    "store for negligence, seeking medical costs, lost wages and pain and suffering."
)
ONLY = {f: False for f in CleanSettings.__dataclass_fields__}


def only(**on) -> CleanSettings:
    """Settings with every rule off except those named."""
    return CleanSettings(**{**ONLY, **on})


def paged(*pages: str) -> str:
    return "\f".join(pages)


# --- Unicode and whitespace -------------------------------------------------------------------
def test_unicode_is_normalised_and_whitespace_tidied():
    raw = (
        "\ufeffThe \u201cde\ufb01nitive\u201d agreement\u2019s terms\u00a0apply.  \r\n"
        "Zero\u200bwidth and soft\u00adhyphen and a bell\x07 go.\r\n"
        "\tIndented   line  keeps   its indent.\n\n\n\n\n\n"
        "``Quoted'' in BillSum style.   "
    )
    out = clean_text(raw, only(normalize_unicode=True))
    assert out == (
        'The "definitive" agreement\'s terms apply.\n'
        "Zerowidth and softhyphen and a bell go.\n"
        " Indented line keeps its indent.\n\n\n"
        '"Quoted" in BillSum style.'
    )


def test_without_normalisation_characters_are_kept():
    raw = "The \u201cquoted\u201d  text."
    assert clean_text(raw, only()) == raw


# --- hyphenation ------------------------------------------------------------------------------
def test_words_hyphenated_across_lines_are_joined():
    raw = "The defendant's negli-\ngence caused the in-\n  jury to the plaintiff."
    assert clean_text(raw, only(join_hyphenated=True)) == (
        "The defendant's negligence caused the injury to the plaintiff."
    )


def test_hyphen_kept_when_the_document_writes_the_compound_elsewhere():
    raw = "It is a well-known rule. The rule is well-\nknown to every court."
    assert clean_text(raw, only(join_hyphenated=True)) == (
        "It is a well-known rule. The rule is well-known to every court."
    )


@pytest.mark.parametrize(
    "raw",
    [
        "The Smith-\nJones agreement.",  # next line starts uppercase
        "Congress finds that--\nthe program works.",  # BillSum's dash
        "See 42 U.S.C. 1395dd-\nand more.",  # not a word
        "The negli-\ngence was clear.",  # joining disabled below
    ],
)
def test_other_line_end_hyphens_are_left_alone(raw):
    settings = only(join_hyphenated="negli" not in raw)
    assert clean_text(raw, settings) == raw


# --- headers and footers ----------------------------------------------------------------------
def test_page_stamps_and_footers_repeated_across_pages_are_removed():
    pages = [
        f"Case 2:19-cv-01234-ABC Document 12 Filed 03/04/20 Page {n} of 4\n"
        f"Body text of page {n} describes the collision at the intersection in detail.\n"
        f"The driver did not stop.\n"
        f"Plaintiff's Complaint for Damages"
        for n in range(1, 5)
    ]
    out = clean_text(paged(*pages), only(strip_headers_footers=True))
    assert "Case 2:19" not in out and "Complaint for Damages" not in out
    assert out.count("The driver did not stop.") == 4
    assert all(f"Body text of page {n}" in out for n in range(1, 5))
    assert "\f" not in out


def test_header_repeated_within_a_document_without_page_breaks():
    header = "SMITH & PARTNERS LLP - CONFIDENTIAL"
    dirty = f"{header}\nThe plaintiff slipped on a wet floor and suf-\nfered a fracture.\n\f" * 3
    out = clean_text(dirty)
    assert header not in out
    assert out.count("suffered a fracture.") == 3
    assert clean_text(dirty.replace("\f", "")).split() == out.split()


@pytest.mark.parametrize(
    "line",
    [
        "(1)",  # list markers in 119th-Congress bills
        "(a) In general",
        "1. Short title",
        "SEC. 2. FINDINGS.",
        "A BILL",
        "The Committee on Veterans' Affairs of the Senate.",  # end of a wrapped sentence
        "by adding at the end the following:",
        "March 31, 2026.",  # a list of dates: digits differ, so these are different lines
    ],
)
def test_text_that_repeats_is_not_taken_for_a_header(line):
    doc = "\n".join(
        f"{line.replace('2026', str(2026 + n))}\nItem {n} of the list." for n in range(4)
    )
    assert clean_text(doc, only(strip_headers_footers=True)) == doc


def test_repeated_lines_across_a_corpus():
    letterhead = "HARTLEY & VOSS LLP | 200 Market Street, Suite 4"
    docs = [
        f"{letterhead}\nA BILL\nSECTION 1. SHORT TITLE.\nCase number {n} concerns a fall."
        if n % 2 == 0
        else f"A BILL\nSECTION 1. SHORT TITLE.\nCase number {n} concerns a car crash."
        for n in range(10)
    ]
    repeats = repeated_lines(docs)
    assert repeats == {"HARTLEY & VOSS LLP | # Market Street, Suite #"}
    assert repeated_lines(docs, min_fraction=0.6) == frozenset()
    assert repeated_lines(docs[:4], min_docs=3) == frozenset()  # letterhead in only 2 of 4
    cleaned = clean_text(docs[0], corpus_repeats=repeats)
    assert cleaned == "A BILL\nSECTION 1. SHORT TITLE.\nCase number 0 concerns a fall."
    assert clean_text(docs[0]) == docs[0]  # once in one document: not a header by itself
    with pytest.raises(ValueError, match="min_fraction"):
        repeated_lines(docs, min_fraction=0)


# --- page and line numbers --------------------------------------------------------------------
def test_page_numbers_are_removed():
    doc = "First page text.\nPage 3 of 12\nMore text.\n- 4 -\nEven more.\n3\nPage 3\n[7]\nEnd."
    out = clean_text(doc, only(strip_page_numbers=True))
    assert out == "First page text.\nMore text.\nEven more.\nEnd."


def test_numbers_that_are_text_are_kept():
    doc = "The lease ran until\n2003\nand cost\n3 dollars a day.\nPage three describes it."
    assert clean_text(doc, only(strip_page_numbers=True)) == doc
    assert clean_text("Text.\nPage 3 of 12\nMore.", only()) == "Text.\nPage 3 of 12\nMore."


def pleading(n_lines: int) -> str:
    body = [f"Line {k} of the complaint alleges a fact about the accident." for k in range(40)]
    return "\n".join(f"{(k % 28) + 1}  {text}" for k, text in enumerate(body[:n_lines]))


def test_line_number_gutters_are_stripped():
    out = clean_text(pleading(40), only(strip_line_numbers=True))
    lines = out.split("\n")
    assert lines[0] == "Line 0 of the complaint alleges a fact about the accident."
    assert lines[30] == "Line 30 of the complaint alleges a fact about the accident."


def test_pleading_paper_with_blank_numbered_lines_stamps_and_footers():
    body = ["MARIA LOPEZ, Plaintiff,", "v.", "FRESH MART, INC., Defendant.", ""]
    body += [f"{n}. Plaintiff alleges fact number {n} about the fall." for n in range(1, 21)]
    pages = []
    for p in range(3):
        numbered = "\n".join(f"{i + 1} {text}" for i, text in enumerate(body[p * 8 : p * 8 + 8]))
        stamp = f"Case 1:21-cv-00123 Document 1 Filed 04/05/21 Page {p + 1} of 3"
        pages.append(f"{stamp}\n{numbered}\nCOMPLAINT FOR DAMAGES - {p + 1}")
    out = clean_text(paged(*pages))
    assert out.split("\n") == [line for line in body if line]
    assert clean_text(out) == out


def test_numbered_text_is_not_a_gutter():
    doc = "Findings:\n1 The program works.\n2 It saves money.\n" + "Prose line.\n" * 10
    assert clean_text(doc, only(strip_line_numbers=True)) == doc
    assert clean_text(pleading(40), only()) == pleading(40)


# --- citations and boilerplate ----------------------------------------------------------------
CITED = (
    "Section 1867 of the Social Security Act (42 U.S.C. 1395dd) requires screening. "
    "See Smith v. Jones, 123 F.3d 456 (9th Cir. 1999). The Act was amended "
    "(Pub. L. 117-58). A person must use ordinary care (see Cal. Civ. Code § 1714)."
)


def test_citations_are_kept_by_default():
    assert clean_text(CITED) == CITED


def test_citations_are_removed_when_asked():
    out = clean_text(CITED, CleanSettings(remove_citations=True))
    assert out == (
        "Section 1867 of the Social Security Act requires screening. See Smith v. Jones. "
        "The Act was amended. A person must use ordinary care."
    )


def test_boilerplate_lines_are_removed_but_sentences_kept():
    keep = "The settlement terms are confidential and all rights reserved by the parties."
    doc = "\n".join(
        [
            "CONFIDENTIAL",
            keep,
            "Privileged & Confidential",
            "© 2023 Hartley & Voss LLP. All rights reserved.",
            "*** This page intentionally left blank ***",
            "Printed on recycled paper",
            "The court granted the motion.",
        ]
    )
    assert clean_text(doc, only(remove_boilerplate=True)) == (
        keep + "\nThe court granted the motion."
    )
    assert clean_text(doc, only()) == doc


# --- what cleaning never does -----------------------------------------------------------------
def test_text_is_never_lowercased_and_stop_words_are_kept():
    assert clean_text(CASE, CleanSettings(remove_citations=True)) == CASE
    shouting = "THE DEFENDANT SHALL PAY THE PLAINTIFF AND THE COURT SHALL DECIDE."
    assert clean_text(shouting) == shouting


DIRTY = [
    paged(
        "HARTLEY & VOSS LLP\n1 The plaintiff was injured by the negli-",
        "HARTLEY & VOSS LLP\n- 2 -\ngence of the driver.  CONFIDENTIAL\n\n\n\n\nEnd",
        "HARTLEY & VOSS LLP\nPage 3 of 3",
    ),
    pleading(40),
    CITED + "\n\n" + CASE,
    "\ufb01le\u00a0no. 3 \u201cquoted\u201d\r\nin-\n\n  jury\n\f\fPage 2\n",
]


@pytest.mark.parametrize("settings", [CleanSettings(), CleanSettings(remove_citations=True)])
def test_cleaning_is_idempotent(settings):
    for doc in DIRTY:
        once = clean_text(doc, settings)
        assert clean_text(once, settings) == once


def test_settings_key_and_checks():
    assert CleanSettings().key() == "c1:UJHPL-B"
    assert CleanSettings(remove_citations=True).key() == "c1:UJHPLCB"
    with pytest.raises(TypeError, match="remove_citations"):
        CleanSettings(remove_citations="yes")


# --- diff preview -----------------------------------------------------------------------------
def test_diff_preview_shows_changes_with_context():
    before = "\n".join(f"line {k}" for k in range(20))
    after = before.replace("line 3", "LINE 3").replace("line 15\n", "")
    diff = diff_preview(before, after, context=1)
    assert diff == [
        (" ", "line 2"),
        ("-", "line 3"),
        ("+", "LINE 3"),
        (" ", "line 4"),
        (" ", HUNK_GAP),
        (" ", "line 14"),
        ("-", "line 15"),
        (" ", "line 16"),
    ]
    assert diff_preview(before, before) == []


# --- quality flags ----------------------------------------------------------------------------
def test_a_clean_example_has_no_flags():
    assert len(CASE.split()) >= 95
    assert quality_flags(CASE, CASE_SUMMARY) == []
    assert quality_flags(CASE, None, n_doc_tokens=150, context_window=2048) == []


@pytest.mark.parametrize(
    "document, summary, flag",
    [
        (" \n\t", "A summary.", "empty_document"),
        ("The motion is denied.", "Denied.", "short_document"),
        (CASE, "", "empty_summary"),
        (CASE, "   \n", "empty_summary"),
        (CASE[:300], CASE, "summary_longer_than_document"),
        (CASE, CASE[150:520], "summary_copied"),
        (CASE, "The plaintiffâ€™s claim Ã© was â€œdismissedâ€\x9d today.", "garbled"),
        (CASE.replace("wet", "wetâ€™").replace("and", "andÃ©"), CASE_SUMMARY, "garbled"),
        ("12.5 33.1 0.07 9 1998 2001 $4,000 44 17.2 % 0.3 " * 10, CASE_SUMMARY, "garbled"),
        ("".join(CASE.split()), CASE_SUMMARY, "garbled"),
    ],
)
def test_each_flag(document, summary, flag):
    flags = quality_flags(document, summary)
    assert flag in flags
    assert set(flags) <= set(FLAG_DESCRIPTIONS)


def test_flags_that_need_care():
    assert quality_flags(" ", None) == ["empty_document"]  # empty, so not also "short"
    assert "empty_summary" not in quality_flags(CASE, None)  # no summary yet
    copied = " ".join(CASE.split()[:24])
    half_copied = CASE_SUMMARY + " " + copied  # 24 of 52 words copied
    assert "summary_copied" not in quality_flags(CASE, half_copied)
    mostly_copied = "In short, the complaint says: " + copied  # 24 of 29 words copied
    assert "summary_copied" in quality_flags(CASE, mostly_copied)
    assert "over_context" in quality_flags(CASE, CASE_SUMMARY, 5000, 2048)
    assert "over_context" not in quality_flags(CASE, CASE_SUMMARY, 5000, None)
    legal = (  # dense with citations, numbers and section signs: 59% letters
        "Under Cal. Civ. Code § 1714(a), everyone is responsible for an injury caused by a want "
        "of ordinary care. See Rowland v. Christian, 69 Cal. 2d 108, 112 (1968); 42 U.S.C. § 1983;"
        " Smith v. Jones, 123 F.3d 456, 460 (9th Cir. 1999). The Infrastructure Investment and "
        "Jobs Act, Pub. L. 117-58, § 11101(b)(2)(A), 135 Stat. 429, appropriated $1,200,000,000 "
        "for fiscal year 2022, see 28 C.F.R. § 35.130 (2024)."
    )
    assert "garbled" not in quality_flags(legal, CASE_SUMMARY)


# --- real data --------------------------------------------------------------------------------
@pytest.mark.skipif(not BILLSUM.exists(), reason="../shared/data is absent")
def test_billsum_sample_keeps_its_words_and_is_not_garbled():
    rows = [json.loads(line) for line in BILLSUM.open(encoding="utf-8")]
    repeats = repeated_lines(r["document"] for r in rows)
    for row in rows:
        before = row["document"]
        after = clean_text(before, corpus_repeats=repeats)
        assert len(after.split()) >= 0.8 * len(before.split()), row["id"]
        assert "garbled" not in quality_flags(after, row["summary"]), row["id"]
        assert clean_text(after, corpus_repeats=repeats) == after, row["id"]
