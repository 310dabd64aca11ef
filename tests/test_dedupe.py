"""engine/data/similarity.py: exact, near and semantic duplicates and their clusters."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from engine.data.similarity import (
    DedupeSettings,
    DuplicatePair,
    cluster_labels,
    exact_pairs,
    find_duplicates,
    near_pairs,
    normalized_hash,
    semantic_pairs,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRAIN = SHARED_DATA / "congress119" / "train.jsonl"


def bill(seed: int, n_sections: int = 6) -> list[str]:
    """A made-up bill: a header, a title and sections of ~80 words drawn from a legal vocabulary."""
    rng = random.Random(seed)
    vocab = (
        "the Secretary shall submit report Congress not later than days after date enactment "
        "this Act section program grant State agency Federal funds amount fiscal year each "
        "under subsection paragraph term means any person entity United States Department"
    ).split() + [f"w{i}" for i in range(400)]
    title = "To " + " ".join(rng.choice(vocab) for _ in range(15)) + "."
    sections = [
        f"{i}. " + " ".join(rng.choice(vocab) for _ in range(80)) for i in range(1, n_sections + 1)
    ]
    return ["A BILL", title, *sections]


def reference_jaccard(a: str, b: str, k: int = 5) -> float:
    def shingles(text):
        words = [re.sub(r"[^\w]|_", "", w.casefold()) for w in text.split()]
        words = [w for w in words if w]
        return {tuple(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}

    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_exact_duplicates_differ_only_in_case_whitespace_and_punctuation():
    texts = [
        "The Secretary shall   submit a report.\n\nSEC. 2. Funding",
        "the secretary SHALL submit a report sec 2 funding",
        "The Secretary shall submit a report. SEC. 3. Funding",
    ]
    assert normalized_hash(texts[0]) == normalized_hash(texts[1]) != normalized_hash(texts[2])
    assert exact_pairs(texts) == [DuplicatePair(0, 1, "exact", 1.0)]


def test_exact_pairs_group_like_normalized_hash_on_unicode_edge_cases():
    texts = [
        "a\u00a0b",
        "a b",
        "A\x1cB",
        "ＡＢ",
        "ab",
        "a-b",
        "a — b",
        "a_b",
        "",
        "  ",
        "—",
        "a\u2002b",
    ]
    by_hash: dict[str, int] = {}
    expected = [by_hash.setdefault(normalized_hash(t), i) for i, t in enumerate(texts)]
    found = cluster_labels(len(texts), exact_pairs(texts))
    assert found == expected
    assert len(set(found)) < len(texts)  # the case is not vacuous: some texts do collapse


def test_near_duplicate_is_found_and_unrelated_document_is_not():
    original = bill(1)
    amended = list(original)
    amended[0] = "AN ACT"  # header changed
    amended[3], amended[5] = original[5], original[3]  # sections reordered
    words = amended[4].split()
    words[10:13] = ["amended", "paragraph", "text"]  # a paragraph edited
    amended[4] = " ".join(words)
    texts = ["\n".join(original), "\n".join(bill(2)), "\n".join(amended)]

    labels, pairs = find_duplicates(texts)

    assert [(p.a, p.b, p.kind) for p in pairs] == [(0, 2, "near")]
    assert pairs[0].score == pytest.approx(reference_jaccard(texts[0], texts[2]), abs=1e-4)
    assert 0.8 <= pairs[0].score < 1.0
    assert labels == [0, 1, 0]


def test_near_pairs_respect_the_threshold():
    original = "\n".join(bill(3))
    words = original.split()
    for at in range(20, len(words), 40):  # a substitution every 40 words: Jaccard about 0.78
        words[at] = "changed"
    edited = " ".join(words)
    jaccard = reference_jaccard(original, edited)
    assert near_pairs([original, edited], DedupeSettings(threshold=jaccard + 0.02)) == []
    found = near_pairs([original, edited], DedupeSettings(threshold=jaccard - 0.02))
    assert [(p.a, p.b) for p in found] == [(0, 1)]


def test_short_and_empty_documents():
    texts = ["Short.", "short", "two words", "Two words!", "", "   ", "three little words"]
    labels, pairs = find_duplicates(texts)
    assert labels == [0, 0, 2, 2, 4, 4, 6]
    assert {p.kind for p in pairs} == {"exact"}
    assert find_duplicates([]) == ([], [])
    assert exact_pairs([]) == near_pairs([]) == []


def test_many_copies_with_small_differences_form_one_cluster():
    base = " ".join(bill(4, n_sections=4))
    texts = [f"{base} note{i}" for i in range(150)] + ["\n".join(bill(5))]
    labels, pairs = find_duplicates(texts)
    assert labels == [0] * 150 + [150]
    assert all(p.kind == "near" for p in pairs)


def test_cluster_labels_follow_chains_to_the_smallest_index():
    chain = [DuplicatePair(2, 3, "near", 0.9), DuplicatePair(1, 2, "near", 0.9)]
    assert cluster_labels(5, chain) == [0, 1, 1, 1, 4]
    assert cluster_labels(0, []) == []


def test_semantic_pairs_with_a_fake_embedder_across_blocks():
    rng = np.random.default_rng(0)
    n = 17_000  # more rows than one block of scores holds
    vectors = rng.normal(size=(n, 32)).astype(np.float32)
    vectors[16_000] = vectors[5] + 0.01
    vectors[986] = vectors[985] + 0.01  # straddles the first block boundary
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"text {i}" for i in range(n)]

    pairs = semantic_pairs(texts, DedupeSettings(), lambda batch: vectors[: len(batch)])

    assert [(p.a, p.b, p.kind) for p in pairs] == [(5, 16_000, "semantic"), (985, 986, "semantic")]
    assert all(p.score > 0.99 for p in pairs)


def test_find_duplicates_adds_semantic_pairs_without_repeating_stronger_ones():
    texts = ["alpha beta", "Alpha beta.", "gamma", "a text about gamma"]
    vectors = {"alpha beta": [1, 0], "Alpha beta.": [1, 0], "gamma": [0, 1]}

    def embed(batch):
        return np.array([vectors.get(t, [0, 1]) for t in batch], dtype=np.float32)

    labels, pairs = find_duplicates(texts, DedupeSettings(semantic=True), embed)
    assert [(p.a, p.b, p.kind) for p in pairs] == [(0, 1, "exact"), (2, 3, "semantic")]
    assert labels == [0, 0, 2, 2]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="threshold"):
        DedupeSettings(threshold=0)
    with pytest.raises(ValueError, match="num_perm"):
        DedupeSettings(num_perm=4)


@pytest.mark.skipif(not TRAIN.exists(), reason="../shared/data is absent")
def test_amended_reintroduction_of_a_real_bill_is_found_among_real_bills():
    bills = [json.loads(line)["document"] for _, line in zip(range(201), TRAIN.open())]
    original = next(b for b in bills if 400 < len(b.split()) < 1500 and "2025" in b)
    lines = original.split("\n")
    lines[1] = lines[1].replace("To ", "To further ", 1)  # an amended title
    lines.insert(4, "This section shall take effect on January 1, 2026.")
    amended = "\n".join(lines).replace("2025", "2026", 2).replace(" shall ", " must ", 3)
    texts = bills + [amended]

    labels, pairs = find_duplicates(texts)

    i, j = bills.index(original), len(texts) - 1
    assert any((p.a, p.b, p.kind) == (i, j, "near") for p in pairs)
    assert labels[j] == labels[i]


@pytest.mark.slow
def test_default_embedder_finds_a_paraphrase():
    from engine.data.similarity import default_embedder

    texts = [
        "The Secretary of Energy shall submit a report to Congress on grid reliability.",
        "The Energy Secretary must send Congress a report about the reliability of the grid.",
        "A resolution honoring the state champion high school basketball team.",
    ]
    pairs = semantic_pairs(texts, DedupeSettings(semantic_threshold=0.8), default_embedder())
    assert [(p.a, p.b) for p in pairs] == [(0, 1)]
