"""How fast the Curate page's queries are with 100,000 examples.

    python bench/curate_queries.py [--docs 100000]

Builds a store of N examples from ../shared/data/congress119/train.jsonl (each bill repeated
with a numbered line so every document is distinct), then times each query the Curate and Data
pages run on a page view (median of 5 runs after one warm-up). Prints the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "congress119" / "train.jsonl"


def main():
    import store
    from engine.data.imports import import_file
    from store import duplicates as dups
    from store import examples as ex

    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    n = parser.parse_args().docs
    if not DATA.exists():
        sys.exit(f"{DATA} is absent: this benchmark needs ../shared/data.")
    bills = [json.loads(line) for line in DATA.open()]
    print(
        f"machine: {platform.platform()}, {platform.processor() or 'cpu'}, python "
        f"{platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        with corpus.open("w") as f:
            for i in range(n):
                b = bills[i % len(bills)]
                f.write(
                    json.dumps(
                        {
                            "document": f"{b['document']}\nCopy {i}.",
                            "summary": b["summary"],
                            "title": b["title"],
                        }
                    )
                    + "\n"
                )
        con = store.connect(Path(tmp) / "bench.duckdb")
        start = time.perf_counter()
        import_file(con, corpus)
        print(f"built a store of {n:,} examples in {time.perf_counter() - start:.1f} s")
        some = ex.ExampleFilter()
        queries = {
            "count all": lambda: ex.count_examples(con, some),
            "first page": lambda: ex.page_examples(con, some, 0, 50),
            "page 1,000": lambda: ex.page_examples(con, some, 50_000 % max(n, 1), 50),
            "filter status+words, count": lambda: ex.count_examples(
                con, ex.ExampleFilter(statuses=("pending",), min_words=300)
            ),
            "filter status+words, page": lambda: ex.page_examples(
                con, ex.ExampleFilter(statuses=("pending",), min_words=300), 500, 50
            ),
            "search 'veterans', page": lambda: ex.page_examples(
                con, ex.ExampleFilter(search="veterans"), 0, 50
            ),
            "sidebar sources": lambda: ex.counts_by(con, "source"),
            "status counts": lambda: ex.counts_by(con, "status"),
            "flag counts": lambda: ex.flag_counts(con),
            "length histogram": lambda: ex.length_histogram(con, "n_words"),
            "duplicate clusters": lambda: dups.count_clusters(con),
        }
        for name, query in queries.items():
            query()
            times = []
            for _ in range(5):
                t = time.perf_counter()
                query()
                times.append(time.perf_counter() - t)
            print(f"{name:32s} {1000 * statistics.median(times):8.1f} ms")


if __name__ == "__main__":
    main()
