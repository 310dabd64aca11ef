"""Which sentences of a document a summary draws on: for the Review page's highlighting.

A sentence counts as a source when enough of its content words (not stop words, lowercased
for matching only) appear in the summary. Simple and fast, and honest about being lexical.
"""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?;:])\s+(?=[A-Z(\"'])|\n{2,}")
_WORD = re.compile(r"[A-Za-z0-9$%]+(?:[.,][0-9]+)*")
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was "
    "were which with shall may not any such under who will been their his her they".split()
)


def content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)} - _STOP


def split_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s and s.strip()]


def source_sentences(document: str, summary: str, threshold: float = 0.5) -> list[tuple[str, bool]]:
    """Every sentence of the document, with whether the summary draws on it."""
    summary_words = content_words(summary)
    out = []
    for sentence in split_sentences(document):
        words = content_words(sentence)
        out.append((sentence, bool(words) and len(words & summary_words) / len(words) >= threshold))
    return out
