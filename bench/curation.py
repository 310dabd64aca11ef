"""Benchmark of curation on a synthetic legal corpus: near-duplicate detection (ours against a
plain datasketch MinHashLSH), then import and cleaning through the store.

Run from the project root:  python bench/curation.py [--docs 100000] [--io-docs 100000]

The corpus is built from ../shared/data/congress119/train.jsonl (never copied into the project):
base documents recombine blocks of lines from different bills, so no two are near duplicates;
then ~10% of the corpus is planted as amended variants of some base documents (a few % of the
words substituted, inserted or deleted, sections moved, headers and titles changed). Ground truth:
an original and its variants form one cluster. Precision and recall are pairwise over clusters:
a pair of documents counts as found when both land in the same predicted cluster.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TRAIN = ROOT.parent / "shared" / "data" / "congress119" / "train.jsonl"

from engine.data.similarity import (  # noqa: E402
    DedupeSettings,
    DuplicatePair,
    cluster_labels,
    find_duplicates,
)


def load_bills() -> list[dict]:
    if not TRAIN.exists():
        sys.exit(f"{TRAIN} is absent: this benchmark needs ../shared/data beside the project.")
    return [json.loads(line) for line in TRAIN.open(encoding="utf-8")]


def blocks_of(document: str, min_words: int = 40, max_words: int = 80) -> list[str]:
    """A bill's body cut into blocks of min_words to max_words words, along its lines where it
    can (long lines are cut too, so that no block is a large share of a document)."""
    blocks, current = [], []
    for line in document.split("\n")[2:]:
        words = line.split()
        while len(current) + len(words) > max_words:
            cut = max_words - len(current)
            blocks.append(" ".join(current + words[:cut]))
            current, words = [], words[cut:]
        current += words
        if len(current) >= min_words:
            blocks.append(" ".join(current))
            current = []
    return blocks


def build_corpus(bills: list[dict], n_docs: int, rng: np.random.Generator):
    """Documents, the truth cluster of each (its original's index) and their summaries."""
    labels, _ = find_duplicates([b["document"] for b in bills], DedupeSettings(threshold=0.5))
    bills = [b for i, b in enumerate(bills) if labels[i] == i]  # one bill per near-dup cluster
    pool = list({block: b["summary"] for b in bills for block in blocks_of(b["document"])}.items())
    heads = [b["document"].split("\n")[:2] for b in bills if b["document"].count("\n") >= 2]
    lengths = np.clip([len(b["document"].split()) for b in bills], 150, 3000)
    n_variants = n_docs // 10
    docs, summaries, cursor, order = [], [], 0, rng.permutation(len(pool))
    for _ in range(n_docs - n_variants):
        kind, title = heads[rng.integers(len(heads))]
        parts, target, words = [kind, title], rng.choice(lengths), 0
        summary = None
        while words < target:
            if cursor == len(order):  # a fresh permutation: blocks meet new neighbours
                cursor, order = 0, rng.permutation(len(pool))
            block, summary_of_block = pool[order[cursor]]
            cursor += 1
            parts.append(block)
            words += len(block.split())
            summary = summary or summary_of_block
        docs.append(parts)
        summaries.append(summary)
    truth = list(range(len(docs)))
    originals = rng.permutation(len(docs))
    vocabulary = [w for block, _ in pool[:2000] for w in block.split()]
    k = 0
    while len(docs) < n_docs:
        original = int(originals[k])
        k += 1
        for _ in range(min(rng.choice([1, 1, 1, 1, 1, 1, 1, 2, 2, 3]), n_docs - len(docs))):
            docs.append(amend(docs[original], rng, vocabulary, pool))
            summaries.append(summaries[original])
            truth.append(original)
    return ["\n".join(parts) for parts in docs], np.array(truth), summaries


def amend(parts: list[str], rng, vocabulary: list[str], pool) -> list[str]:
    """An amended re-introduction: edited words, maybe a new header, a moved section and an
    inserted sentence."""
    kind, title, *body = parts
    if rng.random() < 0.5:
        kind = "AN ACT" if kind == "A BILL" else "A BILL"
        title = title.replace("To ", "To further ", 1) if rng.random() < 0.5 else title + " (2026)"
    if len(body) > 2 and rng.random() < 0.5:
        body.insert(int(rng.integers(len(body))), body.pop(int(rng.integers(len(body)))))
    if rng.random() < 0.3:
        words = pool[rng.integers(len(pool))][0].split()
        start = int(rng.integers(max(1, len(words) - 15)))
        at = int(rng.integers(len(body)))
        body[at] = body[at] + " " + " ".join(words[start : start + int(rng.integers(8, 16))])
    lines = [line.split(" ") for block in body for line in block.split("\n")]
    n_words = sum(len(line) for line in lines)
    for _ in range(max(1, int(n_words * rng.uniform(0.002, 0.012)))):
        line = lines[rng.integers(len(lines))]
        at, op = int(rng.integers(len(line))), rng.random()
        if op < 0.5:
            line[at] = "2026" if line[at] == "2025" else vocabulary[rng.integers(len(vocabulary))]
        elif op < 0.75:
            line.insert(at, vocabulary[rng.integers(len(vocabulary))])
        elif len(line) > 1:
            del line[at]
    return [kind, title, "\n".join(" ".join(line) for line in lines)]


def shingle_set(text: str, k: int = 5) -> set:
    words = text.lower().split()
    return {" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}


def truth_pairs(texts: list[str], truth: np.ndarray) -> pd.DataFrame:
    """Every pair of documents in one truth cluster, with its exact Jaccard (independent code)."""
    rows, planted = [], np.flatnonzero(truth != np.arange(len(truth)))
    members = pd.Series(planted).groupby(truth[planted]).agg(list)
    for original, variants in members.items():
        group = [original, *variants]
        sets = {m: shingle_set(texts[m]) for m in group}
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                rows.append((a, b, len(sets[a] & sets[b]) / len(sets[a] | sets[b])))
    return pd.DataFrame(rows, columns=["a", "b", "jaccard"])


def pairwise_scores(predicted, truth: np.ndarray, pairs: pd.DataFrame, threshold: float):
    """Pairwise precision and recall of the predicted clusters; recall also over the planted
    pairs whose true Jaccard reaches the threshold."""
    predicted = np.asarray(predicted)

    def n_pairs(sizes):
        sizes = np.asarray(sizes, dtype=np.int64)
        return int((sizes * (sizes - 1) // 2).sum())

    frame = pd.DataFrame({"p": predicted, "t": truth})
    both = n_pairs(frame.groupby(["p", "t"]).size())
    found = predicted[pairs["a"]] == predicted[pairs["b"]]
    above = pairs["jaccard"].to_numpy() >= threshold
    return {
        "precision": both / max(1, n_pairs(frame.groupby("p").size())),
        "recall": both / max(1, n_pairs(frame.groupby("t").size())),
        "recall_above": float(found[above].mean()) if above.any() else float("nan"),
    }


class PeakRSS:
    """Peak resident memory growth over a block, sampled from /proc/self/statm every 5 ms
    (after returning freed memory to the OS with malloc_trim, so earlier phases do not hide it)."""

    def __enter__(self):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.mib = (self.peak - self.start) / 2**20


def datasketch_baseline(texts: list[str]) -> list[tuple[int, int, float]]:
    """Plain datasketch: a MinHash per document (update_batch over 5-word shingles), MinHashLSH
    at threshold 0.8, a query per document. Returns candidate pairs with estimated Jaccard."""
    from datasketch import MinHash, MinHashLSH

    lsh, hashes, pairs = MinHashLSH(threshold=0.8, num_perm=128), [], []
    for i, text in enumerate(texts):
        words = text.lower().split()
        shingles = [" ".join(words[j : j + 5]) for j in range(max(1, len(words) - 4))]
        m = MinHash(num_perm=128)
        m.update_batch([s.encode("utf-8") for s in shingles])
        lsh.insert(i, m)
        hashes.append(m)
    for i, m in enumerate(hashes):
        pairs += [(i, j, m.jaccard(hashes[j])) for j in lsh.query(m) if j > i]
    return pairs


def timed(fn, *args):
    with PeakRSS() as mem:
        started = time.perf_counter()
        result = fn(*args)
        seconds = time.perf_counter() - started
    return result, seconds, mem.mib


def report(name, labels, seconds, mib, truth, pairs):
    s = pairwise_scores(labels, truth, pairs, 0.8)
    print(
        f"{name:<31} {len(truth) / seconds:>7,.0f} docs/s {seconds:>6.1f} s  "
        f"P {s['precision']:.4f}  R {s['recall']:.4f}  R(J>=0.8) {s['recall_above']:.4f}  "
        f"+{mib:,.0f} MiB"
    )


def compare_near(texts: list[str], truth: np.ndarray, pairs: pd.DataFrame):
    print("\nnear-duplicate pass: threshold 0.8, 128 permutations, 5-word shingles")
    print("  docs/s: wall time of the whole pass, texts in memory to cluster labels")
    print("  P, R: pairwise precision and recall of the clusters against the planted clusters;")
    print("        R(J>=0.8): recall over planted pairs whose true Jaccard reaches 0.8")
    print("  MiB: peak RSS growth during the pass, sampled every 5 ms from /proc/self/statm")
    find_duplicates(texts[:200])  # warm-up: imports and thread pool
    (labels, _), seconds, mib = timed(find_duplicates, texts, DedupeSettings())
    report("ours: find_duplicates", labels, seconds, mib, truth, pairs)
    candidates, seconds, mib = timed(datasketch_baseline, texts)
    for name, minimum in (("datasketch MinHashLSH", 0.0), ("  + estimated-J >= 0.8 check", 0.8)):
        kept = [DuplicatePair(a, b, "near", j) for a, b, j in candidates if j >= minimum]
        report(name, cluster_labels(len(texts), kept), seconds, mib, truth, pairs)
    print("  (the datasketch rows share one timed run: the check costs no measurable time)")


def measure_import_clean(texts: list[str], summaries: list[str]):
    """Import docs/s and cleaning docs/s through engine.curation into a fresh store."""
    try:
        import store
        from engine.data.curation import clean_documents, refresh_flags
        from engine.data.imports import import_file
    except Exception as e:
        print(f"import: cannot load the pipeline ({type(e).__name__}: {e})")
        return
    print(f"import and clean: {len(texts):,} documents into a fresh DuckDB file")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for i, (text, summary) in enumerate(zip(texts, summaries)):
                row = {"id": f"doc-{i}", "document": text, "summary": summary, "title": ""}
                f.write(json.dumps(row) + "\n")
        con = store.connect(Path(tmp) / "bench.duckdb")
        try:
            store.migrate(con)
            for name, step in (
                ("import", lambda: import_file(con, path, check=False)),  # parse, hash, store
                ("flags", lambda: refresh_flags(con)),  # quality flags of every example
                ("clean", lambda: clean_documents(con)),  # corpus headers, clean, re-flag
            ):
                _, seconds, mib = timed(step)
                rate = len(texts) / seconds
                print(f"{name + ':':<8}{rate:>7,.0f} docs/s {seconds:>6.1f} s  +{mib:,.0f} MiB")
        except Exception as e:
            print(f"import/clean failed: {type(e).__name__}: {e}")
        finally:
            con.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the corpus")
    parser.add_argument("--io-docs", type=int, default=100_000, help="documents to import/clean")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        choices=["near", "io"],
        help="one stage: near duplicates (ours and the baseline) or import/flags/clean",
    )
    args = parser.parse_args()
    import datasketch
    import pyarrow

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, numpy {np.__version__}, pyarrow {pyarrow.__version__}, "
        f"datasketch {datasketch.__version__}"
    )
    print("load average at start (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    started = time.perf_counter()
    texts, truth, summaries = build_corpus(
        load_bills(), args.docs, np.random.default_rng(args.seed)
    )
    pairs = truth_pairs(texts, truth)
    words = np.mean([len(t.split()) for t in texts])
    print(
        f"corpus: {len(texts):,} documents, mean {words:.0f} words, "
        f"{(truth != np.arange(len(truth))).sum():,} planted variants in "
        f"{(pd.Series(truth).value_counts() > 1).sum():,} clusters, {len(pairs):,} true pairs "
        f"({time.perf_counter() - started:.0f} s to build)"
    )
    j = pairs["jaccard"]
    print(
        f"true Jaccard of planted pairs (lower-cased 5-word shingles): min {j.min():.2f}, "
        f"5% {j.quantile(0.05):.2f}, median {j.median():.2f}; {(j >= 0.8).mean():.1%} reach 0.8"
    )
    if args.only != "io":
        compare_near(texts, truth, pairs)
        print()
    if args.only != "near":
        n = min(args.io_docs, len(texts))
        measure_import_clean(texts[:n], summaries[:n])
    print("load average at end (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
