"""Quality flags: doubtful examples are flagged, never dropped.

Empty or very short documents, empty summaries, summaries longer than or copied from their
document, garbled text (mojibake, too few letters, words run together) and documents over the
model's context window. `FLAG_DESCRIPTIONS` explains each flag for the UI.
"""

from __future__ import annotations

import re

COPY_SPAN = 8  # words in a run that counts as copied
COPY_SHARE = 0.8  # share of summary words inside copied runs that flags a summary
FLAG_DESCRIPTIONS = {
    "empty_document": "The document is empty or only whitespace.",
    "short_document": "The document has fewer than 30 words: too little to summarise.",
    "empty_summary": "The summary is empty or only whitespace.",
    "summary_longer_than_document": "The summary has more words than the document.",
    "summary_copied": f"At least {COPY_SHARE:.0%} of the summary's words sit in runs of "
    f"{COPY_SPAN} or more words copied verbatim from the document: an extract, not a summary.",
    "garbled": "The document or summary looks garbled: broken encoding (Ã©, �), mostly "
    "non-letters, or words run together, as from a bad PDF extraction.",
    "over_context": "The document has more tokens than the model's context window, so "
    "training sees it truncated.",
}
_WORDS = re.compile(r"\w+")
_ASCII_WORD_BYTES = bytes(c if chr(c).isalnum() else 32 for c in range(128)) + b" " * 128
_ASCII_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_MOJIBAKE = re.compile(r"\ufffd|Ã[\x80-\xbf]|â€|Â[\xa0-\xbf]|ï¿½")
_RUN_ON = re.compile(r"[^\W\d_]{30,}")  # 30+ letters unbroken: words run together (PDF)


def quality_flags(
    document: str,
    summary: str | None,
    n_doc_tokens: int | None = None,
    context_window: int | None = None,
) -> list[str]:
    """Names of the flags that apply (keys of FLAG_DESCRIPTIONS). Nothing is ever dropped.
    A summary of None means "not written yet" and raises no summary flag."""
    flags = []
    n_doc = len(document.split())
    if n_doc == 0:
        flags.append("empty_document")
    elif n_doc < 30:
        flags.append("short_document")
    if summary is not None:
        n_sum = len(summary.split())
        if n_sum == 0:
            flags.append("empty_summary")
        elif n_doc and n_sum > n_doc:
            flags.append("summary_longer_than_document")
        if n_sum and n_doc and copied_share(document, summary) >= COPY_SHARE:
            flags.append("summary_copied")
    if looks_garbled(document) or (summary is not None and looks_garbled(summary)):
        flags.append("garbled")
    if n_doc_tokens is not None and context_window is not None and n_doc_tokens > context_window:
        flags.append("over_context")
    return flags


def copied_share(document: str, summary: str, span: int = COPY_SPAN) -> float:
    """Share of the summary's words inside runs of `span`+ words that also occur in the
    document (case-insensitive); 0 for summaries shorter than `span` words."""
    if document.isascii() and summary.isascii():  # bytes.translate: ten times the speed
        s = summary.lower().encode().translate(_ASCII_WORD_BYTES).split()
        d = document.lower().encode().translate(_ASCII_WORD_BYTES).split() if len(s) >= span else []
    else:
        s, d = _WORDS.findall(summary.lower()), _WORDS.findall(document.lower())
    if len(s) < span:
        return 0.0
    grams = set(zip(*(d[k:] for k in range(span)), strict=False))
    covered = bytearray(len(s))
    for i, gram in enumerate(zip(*(s[k:] for k in range(span)), strict=False)):
        if gram in grams:
            covered[i : i + span] = b"\x01" * span
    return sum(covered) / len(s)


def looks_garbled(text: str) -> bool:
    """Broken encoding (3+ signs, or 1 per 100 words), under half letters, or over 10% of
    characters in runs of 30+ letters. BillSum and 119th-Congress bills, with their numbers,
    § signs, tables and citations, have at least 62% letters and no such runs."""
    words = text.split()
    chars = sum(map(len, words))
    if chars < 20:
        return False
    bad = len(_MOJIBAKE.findall(text))
    if bad >= 3 or bad / len(words) >= 0.01:
        return True
    # bytes.translate counts ASCII letters fast; only runs of other characters are looked at
    encoded = text.encode("ascii", "ignore")
    letters = len(encoded) - len(encoded.translate(None, _ASCII_LETTERS))
    if not text.isascii():
        letters += sum(c.isalpha() for run in _NON_ASCII.findall(text) for c in run)
    if letters < 0.5 * chars:
        return True
    run_on = sum(len(run) for w in words if len(w) >= 30 for run in _RUN_ON.findall(w))
    return run_on > 0.1 * chars
