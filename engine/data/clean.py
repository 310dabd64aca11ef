"""Non-destructive text cleaning and quality flags for legal documents (pure functions).

`clean_text` tidies one document (Unicode, hyphenated line breaks, running headers and footers,
page and line numbers, boilerplate, optionally citations); `repeated_lines` finds header/footer
lines shared by many documents of a corpus; `quality_flags` flags, never drops, doubtful
examples. Text is never lowercased and stop words are kept: a model must learn to write prose.
Cleaning is idempotent: cleaning a cleaned text changes nothing.

Try it: python -m engine.data.clean < document.txt
"""

from __future__ import annotations

import difflib
import math
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields

from engine.errors import TuneloopError

RULES_VERSION = 1  # bump when a rule changes, so stored cleaned texts get a new version key
HUNK_GAP = "⋯"  # diff_preview's marker between two hunks that are not adjacent
MAX_KEY_LEN = 160  # longer lines are text: never header, page number or boilerplate

# --- characters: a regex finds the few odd ones, faster than str.translate over every one ----
_REPLACE = {
    **dict.fromkeys("\t", " "),
    **dict.fromkeys("\x0b\x85\u2028\u2029", "\n"),
    **dict.fromkeys("‘’‚‛′", "'"),
    **dict.fromkeys("“”„‟″", '"'),
    **dict.fromkeys("\u2010\u2011", "-"),  # NFKC keeps Unicode hyphens; joining needs ASCII
}  # every other match (controls, soft hyphen, zero-width, BOM, direction marks) is dropped
_ODD_CHARS = re.compile(
    "[\x00-\x09\x0b\x0d-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2010\u2011\u2018-\u201f\u2028\u2029"
    "\u2032\u2033\u2060\ufeff]"
)
_CRLF = re.compile(r"\r\n?")
_TEX_QUOTES = re.compile(r"``|''")  # BillSum writes ``quotes''
_BLANK_RUNS = re.compile(r"\n{4,}")  # more than two blank lines
_DIGITS = re.compile(r"\d+")  # "Page 3 of 12" and "Page 4 of 12" are one footer

# --- what a running header or footer can look like -------------------------------------------
_CANDIDATE = re.compile(r"^[ \t]*([^\sa-z][^\n]*)", re.M)  # a fast first sieve
_CONTINUES = ",;:-–—"  # a line ending so goes on in the next line: text, not a header
_STRUCTURE = re.compile(  # numbered parts of the text itself, never headers
    r"\((?:\w{1,6}|#)\)|[\d#]+(?:\.[\d#]+)*\. |§|(?i:sec(?:tion)?s?|title|subtitle|article"
    r"|chapter|part|division|count|claim|exhibit|schedule|appendix|attachment)\.?\s+[\d#IVXLCivxlc]"
)
# the line naming the document type tells a model to write "This bill…" or "This resolution…"
_DOC_TYPE = re.compile(r"(?:A|AN) (?:BILL|ACT)|(?:JOINT |CONCURRENT |SIMPLE )?RESOLUTION")
_OPENERS = "\"'`[("  # characters that may open a word or line; the last two open markers
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
_NON_LETTERS = re.compile(r"[\W\d_]+")

# --- whole-line removals ---------------------------------------------------------------------
_PAGE_NUMBER = re.compile(
    r"(?:page|pg\.?|p\.)\s*(?:\d{1,4}|[ivxlc]{1,6})(?:\s*(?:of|/)\s*\d{1,4})?"
    r"|[-–—]\s*\d{1,4}\s*[-–—]|\[\s*\d{1,4}\s*\]|\d{1,3}|\d{1,4}\s*(?:of|/)\s*\d{1,4}",
    re.I,
)
_BOILERPLATE_HINTS = (  # cheap test before the line-by-line regex
    "confidential|privileged|rights reserved|blank|recycled|internal use|do not|draft"
    "|work product|government works"
).split("|")
_BOILERPLATE = re.compile(
    r"[\W_]*(?:(?:strictly |highly )?confidential(?: (?:and|&) privileged)?"
    r"|privileged (?:and|&) confidential|attorney[- ]client (?:privileged?|communication)"
    r"(?: communication)?(?: (?:and|&) confidential)?|attorney work product"
    r"|(?:(?:©|\(c\)|copyright)[^\n]{0,80}?|[^\n]{0,80}?[.,;|] ?)?all rights reserved"
    r"|(?:©[^\n]{0,80}?)?no claim to original u\.?s\.? government works"
    r"|this page (?:is )?(?:intentionally )?left blank(?: intentionally)?"
    r"|printed on recycled paper|for internal use only|do not (?:copy|distribute|duplicate)"
    r"|draft(?: -? ?not for (?:filing|distribution))?)[\W_]*",
    re.I,
)
_GUTTER = re.compile(r"[ \t]*(\d{1,2})(?:[ \t]+|$)")

# --- joins and citations ---------------------------------------------------------------------
_HYPHEN_BREAK = re.compile(r"-[ \t]*\n(?:[ \t]*\n)*[ \t]*([a-z]+)")  # led by a literal: fast
_LEFT_WORD = re.compile(r"\b[A-Za-z]*[a-z]\Z")
_CITATION = re.compile(  # the lookahead lets the engine skip most positions quickly
    r"(?=[\dA-Z&])\b(?:\d+ ?(?:"
    r"U\. ?S\. ?C\.(?: ?A\.)? ?(?:§+ ?)?\d+[\w.\-–]*(?:\(\w+\))*(?: (?:et seq\.|note))?"
    r"|C\. ?F\. ?R\. ?(?:§+ ?)?\d[\d.]*(?:\(\w+\))*|Stat\. \d+"
    r"|(?:U\. ?S\.|S\. ?Ct\.|L\. ?Ed\.(?: ?2d)?|F\.(?: ?(?:2d|3d|4th)| ?Supp\.(?: ?[23]d)?)?"
    r"|[A-Z][a-z]*\.(?: ?[A-Z][a-z]*\.)*(?: ?(?:2d|3d|4th|5th))?) \d+(?:, ?\d+)*"
    r"(?: ?\([^()\n]{0,40}?\d{4}\))?)"
    r"|Pub(?:lic)?\.? L(?:aw)?\.? (?:No\. )?\d+[-–]\d+"
    r"|(?:(?:[A-Z][a-z]{0,6}\.)+ |& ){1,5}(?:[A-Z][a-z]+ )?(?:Code|Laws?|Stat\.)"
    r"(?: (?:[A-Z][a-z]*\.|&))* ?§+ ?\d[\d.:\-–]*[a-z]?(?:\(\w+\))*)"
)
_EMPTY_PARENS = re.compile(  # parentheses left empty, or holding only "see", "cf.", …
    r"[ \t]*\([ \t]*(?:(?:[Ss]ee(?: also)?|[Cc]f\.|e\.g\.,?|[Ii]d\.)[ \t]*)?(?:[,;][ \t]*)*\)"
)


@dataclass(frozen=True)
class CleanSettings:
    normalize_unicode: bool = True  # NFKC, plain quotes, no control characters, tidy spaces
    join_hyphenated: bool = True  # "negli-\ngence" -> "negligence"
    strip_headers_footers: bool = True  # lines repeated within a document or across a corpus
    strip_page_numbers: bool = True  # "Page 3 of 12", "- 4 -", "3" alone on a line
    strip_line_numbers: bool = True  # 1, 2, 3… gutters of pleading paper
    remove_citations: bool = False  # "42 U.S.C. 1395dd", "123 F.3d 456 (9th Cir. 1999)"
    remove_boilerplate: bool = True  # "CONFIDENTIAL", "All rights reserved", …

    def __post_init__(self):
        for f in fields(self):
            if not isinstance(getattr(self, f.name), bool):
                raise TypeError(f"CleanSettings.{f.name} must be True or False.")

    def key(self) -> str:
        """Short stable name of the rules and settings, e.g. 'c1:UJHPL-B', for versioning."""
        on = [getattr(self, f.name) for f in fields(self)]
        codes = (c if o else "-" for c, o in zip("UJHPLCB", on, strict=True))
        return f"c{RULES_VERSION}:" + "".join(codes)


DEFAULT_SETTINGS = CleanSettings()


def _normalize(text: str) -> str:
    text = _CRLF.sub("\n", text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = _ODD_CHARS.sub(lambda m: _REPLACE.get(m[0], ""), text)
    return _TEX_QUOTES.sub('"', text)


def _key(line: str) -> str:
    """What makes two lines the same: stripped, runs of spaces as one; '' for long lines."""
    if len(line) > MAX_KEY_LEN:
        return ""
    key = line.strip()
    return " ".join(key.split()) if "  " in key or "\t" in key else key


def _looks_like_header(key: str, max_len: int = MAX_KEY_LEN) -> bool:
    """Could this line (spaces collapsed) be a running header or footer rather than text?"""
    if not key or len(key) > max_len or key[-1] in _CONTINUES:
        return False
    words = [w.lstrip(_OPENERS) for w in key.split(" ")]
    lower = [w[:1].islower() for w in words]
    if len(words) < 2 or lower[0] or lower[-1] or sum(lower) >= 4:
        return False  # a lone word, or wrapped running text
    if len(_NON_LETTERS.sub("", key)) < 4 or (any(lower) and _SENTENCE_END.search(key)):
        return False  # a fragment like "2003''." or the end of a wrapped sentence
    key = key.lstrip(_OPENERS[:-2])  # a quoted "(A)" is still structure
    return not _STRUCTURE.match(key) and not _DOC_TYPE.fullmatch(key)


def repeated_lines(
    texts: Iterable[str], min_docs: int = 3, min_fraction: float = 0.2, max_len: int = 120
) -> frozenset[str]:
    """Header-like lines (digits written '#') found in ≥ max(min_docs, min_fraction × n) docs.

    One pass. Lines seen in one document only are forgotten every 10,000 documents, so memory
    stays bounded; a line loses at most one count per 10,000 documents that way."""
    if min_docs < 1 or not 0 < min_fraction <= 1 or not 0 < max_len <= MAX_KEY_LEN:
        raise TuneloopError(
            f"Need min_docs ≥ 1, 0 < min_fraction ≤ 1 and 0 < max_len ≤ {MAX_KEY_LEN}."
        )
    counts: Counter[str] = Counter()
    n = 0
    for text in texts:
        n += 1
        lines = _CANDIDATE.findall(_normalize(text).replace("\f", "\n"))
        keys = {_DIGITS.sub("#", _key(line)) for line in lines}
        counts.update(k for k in keys if 0 < len(k) <= max_len and k[-1] not in _CONTINUES)
        if n % 10_000 == 0:
            counts = Counter({k: c for k, c in counts.items() if c > 1})
    threshold = max(min_docs, math.ceil(min_fraction * n))
    return frozenset(
        k for k, c in counts.items() if c >= threshold and _looks_like_header(k, max_len)
    )


def clean_text(
    text: str,
    settings: CleanSettings = DEFAULT_SETTINGS,
    corpus_repeats: frozenset[str] = frozenset(),
) -> str:
    """The cleaned text; page breaks (form feeds) become line breaks. Lines are removed whole
    or lose a gutter number; words split by a hyphen are joined; no other word is dropped or
    changed unless citations are to be removed. corpus_repeats: from repeated_lines."""
    s = settings
    if s.normalize_unicode:
        text = _normalize(text)
    if s.remove_citations:  # first, so that a line left empty or bare is judged as such
        text = _remove_citations(text)
    text = _process_lines(text, s, corpus_repeats)
    if s.normalize_unicode:
        text = _BLANK_RUNS.sub("\n\n\n", text).lstrip("\n").rstrip()
    return text


def _remove_citations(text: str) -> str:
    """Drop citations with the comma and spaces before them, then parentheses left empty."""
    parts, end = [], 0
    for m in _CITATION.finditer(text):
        head = text[end : m.start()].rstrip(" \t")
        parts.append(head[:-1].rstrip(" \t") if head.endswith(",") else head)
        end = m.end()
    parts.append(text[end:])
    return _EMPTY_PARENS.sub("", "".join(parts))


def _join(m: re.Match, text: str) -> str:
    """Join a word split by a line-end hyphen between two lowercase letters. A compound broken
    at its own hyphen ("well-\nknown") keeps the hyphen when the document writes it hyphenated
    elsewhere; otherwise the hyphen is a wrap and goes."""
    left = _LEFT_WORD.search(text, max(0, m.start() - 60), m.start())
    if not left:  # "1395dd-", "that--" or an uppercase letter: not a wrapped word
        return m[0]
    right = m[1]
    return f"-{right}" if f"{left[0]}-{right}" in text else right


def _process_lines(text: str, s: CleanSettings, corpus_repeats: frozenset[str]) -> str:
    pages = [page.split("\n") for page in text.split("\f")]
    lines = [line for page in pages for line in page]
    sizes = [len(page) for page in pages] if len(pages) >= 3 else []
    text = _join_hyphens("\n".join(_drop_lines(lines, s, corpus_repeats, sizes)), s)
    lines = text.split("\n")
    # Gutters come after the other removals and joins, so the share of numbered lines does
    # not change when the cleaned text is cleaned again; a header behind a number goes next.
    if s.strip_line_numbers and _strip_gutters(lines):
        lines = _join_hyphens("\n".join(_drop_lines(lines, s, corpus_repeats, [])), s).split("\n")
    if s.normalize_unicode:
        for i, line in enumerate(lines):
            line = line.rstrip()
            body = line.lstrip(" ")
            if "  " in body:  # collapse inner runs of spaces; the indentation shows nesting
                line = line[: len(line) - len(body)] + " ".join(body.split())
            lines[i] = line
    return "\n".join(lines)


def _join_hyphens(text: str, s: CleanSettings) -> str:
    return _HYPHEN_BREAK.sub(lambda m: _join(m, text), text) if s.join_hyphenated else text


def _drop_lines(
    lines: list[str], s: CleanSettings, corpus_repeats: frozenset[str], page_sizes: list[int]
) -> list[str]:
    """The lines that are not headers, footers, page numbers or boilerplate."""
    keys = [_key(line) for line in lines]
    drop: set[str] = set()  # keys of lines to remove
    digit_drop: set[str] = set()  # the same with digits written '#' (page stamps vary)
    if s.strip_headers_footers:
        drop = {k for k, c in Counter(keys).items() if c >= 3 and _looks_like_header(k)}
        digit_drop = set(corpus_repeats) | _page_headers(page_sizes, keys)
    digit_keys = [_DIGITS.sub("#", k) for k in keys] if digit_drop else keys
    lowered = "\n".join(keys).lower()
    boiler = s.remove_boilerplate and any(h in lowered for h in _BOILERPLATE_HINTS)
    return [
        line
        for line, key, dkey in zip(lines, keys, digit_keys, strict=True)
        if not key
        or not (
            key in drop
            or dkey in digit_drop
            or (s.strip_page_numbers and len(key) <= 24 and _PAGE_NUMBER.fullmatch(key))
            or (boiler and _BOILERPLATE.fullmatch(key))
        )
    ]


def _page_headers(page_sizes: list[int], keys: list[str]) -> set[str]:
    """Header-like lines among the first or last 3 lines of at least half of the pages (and of
    3 or more). Only form-feed pages are trusted this far, so a list of dates is safe."""
    counts: Counter[str] = Counter()
    start = n_pages = 0
    for size in page_sizes:
        filled = [_DIGITS.sub("#", k) for k in keys[start : start + size] if k]
        start += size
        n_pages += bool(filled)
        counts.update({k for k in filled[:3] + filled[-3:] if _looks_like_header(k)})
    return {k for k, c in counts.items() if c >= max(3, n_pages / 2)}


def _strip_gutters(lines: list[str]) -> bool:
    """Cut pleading-paper line numbers (1, 2, 3…, lower again on a new page) off the start of
    lines, in place, when they are at least half of the non-blank lines."""
    numbered = [line.lstrip(" \t")[:1].isdigit() for line in lines]
    n_lines = sum(1 for line in lines if line.strip())
    if sum(numbered) * 2 < n_lines:
        return False
    hits, previous = [], 0
    for i in (i for i, starts in enumerate(numbered) if starts):
        m = _GUTTER.match(lines[i])
        # gaps of up to 3: blank numbered lines went as page numbers; lower: a new page
        if m and (previous < int(m[1]) <= previous + 3 or int(m[1]) < previous):
            hits.append((i, m.end()))
            previous = int(m[1])
    if len(hits) < 5 or len(hits) * 2 < n_lines:
        return False
    for i, end in hits:
        lines[i] = lines[i][end:]
    return True


def diff_preview(before: str, after: str, context: int = 2) -> list[tuple[str, str]]:
    """Changed lines with `context` lines around them, as (op, line) with op " ", "-" or "+".
    Hunks that are not adjacent are separated by (" ", HUNK_GAP)."""
    a, b = before.splitlines(), after.splitlines()
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for n, group in enumerate(matcher.get_grouped_opcodes(context)):
        if n:
            out.append((" ", HUNK_GAP))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [(" ", line) for line in a[i1:i2]]
                continue
            out += [("-", line) for line in a[i1:i2]]
            out += [("+", line) for line in b[j1:j2]]
    return out


if __name__ == "__main__":
    print(clean_text(sys.stdin.read()))
