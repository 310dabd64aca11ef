"""Per-document summary metrics, the one home of each score whichever stage computes it.

ROUGE-1/2/L/Lsum (rouge-score with stemming: the evaluation's scores and training's validation
ROUGE-L), semantic similarity (cosine of all-MiniLM-L6-v2 embeddings), novel n-grams (how
abstractive), and unsupported facts: numbers, dates, money amounts and capitalised names in the
summary that the document does not contain — base models invent dates and statutes (the
evaluation's unsupported-fact rates, `fact_counts`, and the labelling queue's fact check). Their
confidence intervals are engine/stats.py's. Shared by the stages; it imports none of them.
"""

from __future__ import annotations

import re

import numpy as np

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_WORD = re.compile(r"\w+")
_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|"
    "December|Jan\\.|Feb\\.|Mar\\.|Apr\\.|Jun\\.|Jul\\.|Aug\\.|Sept?\\.|Oct\\.|Nov\\.|Dec\\."
)
_DATE = re.compile(
    rf"\b(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"
    rf"|\b\d{{1,2}}\s+(?:{_MONTHS})\s+\d{{4}}\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b"
)
_MONEY = re.compile(r"\$\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:million|billion|thousand))?", re.I)
_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
_LIST_MARKER = re.compile(r"\(\d{1,2}\)|^\s*\d{1,2}[.)]\s", re.M)  # "(2) requires ...", "3. ..."
_NAME = re.compile(
    r"\b[A-Z][a-z]+(?:\s+(?:[A-Z][a-z]+|of|the|and|&)){0,4}\s+[A-Z][a-z]+\b"
    r"|\b[A-Z]{2,}(?:\s+[A-Z]{2,})*\b"
)
# Words that open a sentence or a phrase, not a name ("Under the Clean Air Act", "The Secretary").
_LEADING = frozenset(
    "the this that these those in on it a an under for with by from to as at if any each also "
    "specifically further finally among after before during within such its their".split()
)
_CONNECTORS = frozenset({"of", "the", "and", "for", "on", "&"})
_COMPOUND = re.compile(
    r"\b(twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)-"
    r"(one|two|three|four|five|six|seven|eight|nine)\b"
)
# Documents often spell out what summaries write as digits ("three years" -> "3 years").
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {
    w: str(10 * i)
    for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split(), 3)
}


def rouge(predictions: list[str], references: list[str]) -> dict[str, np.ndarray]:
    """F-measures per document for each ROUGE type (Lsum splits sentences on newlines)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = [scorer.score(r, p) for p, r in zip(predictions, references)]
    return {t: np.array([s[t].fmeasure for s in scores]) for t in ROUGE_TYPES}


def semantic_similarity(predictions: list[str], references: list[str], embed) -> np.ndarray:
    """Cosine similarity of each prediction to its reference; `embed` returns normalised rows."""
    if not predictions:
        return np.array([])
    a, b = embed(predictions), embed(references)
    return np.sum(a * b, axis=1)


def novel_ngram_ratio(summary: str, document: str, n: int = 2) -> float:
    """Share of the summary's n-grams that are not in the document (0 = purely extractive)."""
    s, d = _WORD.findall(summary.lower()), _WORD.findall(document.lower())
    grams = [tuple(s[i : i + n]) for i in range(len(s) - n + 1)]
    if not grams:
        return 0.0
    seen = {tuple(d[i : i + n]) for i in range(len(d) - n + 1)}
    return sum(g not in seen for g in grams) / len(grams)


def _amount(text: str) -> float | None:
    """The value of an amount as written: "$1.2 million", "1,200,000" and "1200000" agree."""
    text = _norm_number(text)
    scale = 1
    for word, factor in (("thousand", 1e3), ("million", 1e6), ("billion", 1e9)):
        if text.endswith(word):
            text, scale = text[: -len(word)], factor
    try:
        return round(float(text) * scale, 2)
    except ValueError:
        return None


def _norm_number(text: str) -> str:
    return text.replace(",", "").replace("$", "").replace(" ", "").lower()


def _name(match: str) -> str | None:
    """A capitalised phrase without the sentence words that open it; None if nothing is left."""
    words = match.split()
    while words and words[0].lower() in _LEADING:
        words = words[1:]
    while words and words[-1].lower() in _CONNECTORS:
        words = words[:-1]
    return " ".join(words) or None


def facts(text: str) -> dict[str, set[str]]:
    """Dates, money amounts, other numbers and capitalised names mentioned in a text."""
    dates = set(_DATE.findall(text))
    money = {_norm_number(m) for m in _MONEY.findall(text)}
    masked = _LIST_MARKER.sub(" ", _MONEY.sub(" ", _DATE.sub(" ", text)))
    numbers = {_norm_number(m) for m in _NUMBER.findall(masked)}
    names = {n for m in _NAME.findall(text) if (n := _name(m))}
    return {"dates": dates, "money": money, "numbers": numbers, "names": names}


def _initialisms(words: list[str], longest: int = 6) -> set[str]:
    """Initials of every run of 2..longest words, with and without the connecting words, so
    that "DHS", "DOD" and "LEA" are supported by "Department of Homeland Security",
    "Department of Defense" and "local educational agency"."""
    out = set()
    for i in range(len(words)):
        for n in range(2, longest + 1):
            run = words[i : i + n]
            if len(run) < n:
                break
            out.add("".join(w[0] for w in run))
            content = [w for w in run if w not in _CONNECTORS]
            if len(content) >= 2:
                out.add("".join(w[0] for w in content))
    return out


def unsupported_facts(summary: str, document: str, cut_off: bool = False) -> list[str]:
    """Facts in the summary that the document does not contain. A date counts as supported
    when its day, month and year all appear; a number when the document has it in digits or
    spelt out; an acronym when it is in the document or is the initials of one of its phrases
    (or of a phrase the summary spells out, whose own words are checked as a name);
    any other name when at least half of its words appear (a summary may write "Department of
    Labor" for the bill's "Secretary of Labor"; an invented name shares none). With cut_off
    (the generation stopped at its token limit) the last, possibly cut, word is not checked."""
    if cut_off:
        summary = summary.rsplit(maxsplit=1)[0] if len(summary.split()) > 1 else ""
    doc_words_list = _WORD.findall(document.lower())
    doc_words = set(doc_words_list)
    doc_numbers = {_norm_number(m) for m in _NUMBER.findall(document)}
    doc_numbers |= {_NUMBER_WORDS[w] for w in doc_words if w in _NUMBER_WORDS}
    doc_numbers |= {
        str(int(_NUMBER_WORDS[tens]) + int(_NUMBER_WORDS[unit]))
        for tens, unit in _COMPOUND.findall(document.lower())
    }
    found = facts(summary)
    missing = []
    for date in found["dates"]:
        parts = [p.lower() for p in re.findall(r"[A-Za-z]+|\d+", date)]
        if not all(p in doc_words for p in parts if p not in ("st", "nd", "rd", "th")):
            missing.append(date)
    doc_amounts = {_amount(m) for m in _MONEY.findall(document)} | {_amount(n) for n in doc_numbers}
    missing += [m for m in found["money"] if _amount(m) not in doc_amounts]
    missing += [n for n in found["numbers"] if n not in doc_numbers]
    initials = None
    for name in found["names"]:
        words = [w for w in _WORD.findall(name.lower()) if w not in _CONNECTORS]
        if name.isupper() and " " not in name:  # an acronym
            if initials is None:  # the document's phrases, and the summary's own definitions
                initials = _initialisms(doc_words_list) | _initialisms(
                    _WORD.findall(summary.lower())
                )
            if words and words[0] not in doc_words and words[0] not in initials:
                missing.append(name)
        elif sum(w in doc_words for w in words) * 2 < len(words):
            missing.append(name)
    return sorted(set(missing))


def fact_counts(unsupported: list[str]) -> dict:
    """Counts of a summary's unsupported facts: all of them, and the numbers, dates and amounts
    among them (what a model invents; names also catch a summary's own conventions, such as
    "USDA" for a bill's "Secretary of Agriculture")."""
    numbers = sum(any(c.isdigit() for c in fact) for fact in unsupported)
    return {
        "unsupported_facts": len(unsupported),
        "has_unsupported": int(bool(unsupported)),
        "unsupported_numbers": numbers,
        "has_unsupported_numbers": int(bool(numbers)),
    }
