"""Examples: a document with its reference summary, review status, split, tags and flags.

Listing is paginated in SQL (`page_examples`), so the Curate page never loads the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

STATUSES = ("pending", "accepted", "rejected", "needs-edit")
SPLITS = ("train", "validation", "test")


@dataclass
class ExampleFilter:
    statuses: tuple[str, ...] = ()  # empty: any
    sources: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()  # "none" selects examples not yet split
    flag: str | None = None  # has this quality flag ("any": any flag, "none": no flag)
    tag: str | None = None
    search: str | None = None  # case-insensitive substring of title, summary or document
    min_words: int | None = None  # document length in words
    max_words: int | None = None
    has_summary: bool | None = None
    duplicates_only: bool = False  # only examples whose document is in a duplicate cluster

    def where(self) -> tuple[str, list]:
        parts, params = ["TRUE"], []
        if self.statuses:
            parts.append("e.status IN (SELECT unnest(?))")
            params.append(list(self.statuses))
        if self.sources:
            parts.append("e.source IN (SELECT unnest(?))")
            params.append(list(self.sources))
        if self.splits:
            named = [s for s in self.splits if s != "none"]
            cond = "e.split IN (SELECT unnest(?))" if named else "FALSE"
            params += [named] if named else []
            if "none" in self.splits:
                cond = f"({cond} OR e.split IS NULL)"
            parts.append(cond)
        if self.flag == "any":
            parts.append("len(e.flags) > 0")
        elif self.flag == "none":
            parts.append("len(e.flags) = 0")
        elif self.flag:
            parts.append("list_contains(e.flags, ?)")
            params.append(self.flag)
        if self.tag:
            parts.append("list_contains(e.tags, ?)")
            params.append(self.tag)
        if self.search:
            parts.append(
                "(coalesce(d.title, '') ILIKE ? OR coalesce(e.summary, '') ILIKE ? "
                "OR d.clean_text ILIKE ?)"
            )
            params += [f"%{self.search}%"] * 3
        if self.min_words is not None:
            parts.append("d.n_words >= ?")
            params.append(self.min_words)
        if self.max_words is not None:
            parts.append("d.n_words <= ?")
            params.append(self.max_words)
        if self.has_summary is not None:
            parts.append("e.summary IS NOT NULL" if self.has_summary else "e.summary IS NULL")
        if self.duplicates_only:
            parts.append(
                "d.cluster_id IN (SELECT cluster_id FROM documents WHERE cluster_id IS NOT NULL "
                "GROUP BY cluster_id HAVING count(*) > 1)"
            )
        return " AND ".join(parts), params


_FROM = "FROM examples e JOIN documents d ON d.id = e.document_id"


def add_examples(con, rows) -> int:
    """Insert examples (a DataFrame or Arrow table: document_id, summary, origin, source,
    status, flags, content_hash, n_summary_words) whose content_hash is new; return how many
    were new."""
    con.register("_new_examples", rows)
    try:
        return con.execute(
            """INSERT INTO examples (document_id, summary, origin, source, status, flags,
                   content_hash, n_summary_words)
               SELECT document_id, summary, origin, source, status, flags, content_hash,
                   n_summary_words
               FROM (SELECT *, row_number() OVER (PARTITION BY content_hash) AS k
                     FROM _new_examples)
               WHERE k = 1 AND content_hash NOT IN (SELECT content_hash FROM examples)"""
        ).fetchone()[0]
    finally:
        con.unregister("_new_examples")


def count_examples(con, f: ExampleFilter = ExampleFilter()) -> int:
    where, params = f.where()
    return con.execute(f"SELECT count(*) {_FROM} WHERE {where}", params).fetchone()[0]


def page_examples(con, f: ExampleFilter, offset: int = 0, limit: int = 50) -> pd.DataFrame:
    """One page of examples. The page's ids are found first, so the text columns are read for
    those rows only, not for every row the filter matches."""
    where, params = f.where()
    return con.execute(
        f"""WITH page AS (SELECT e.id {_FROM} WHERE {where} ORDER BY e.id LIMIT ? OFFSET ?)
           SELECT e.id, d.title, left(d.clean_text, 200) AS document, e.summary, e.status,
               e.split, e.flags, e.tags, d.n_words, e.n_summary_words, e.source, e.origin,
               d.cluster_id, e.document_id
           FROM page JOIN examples e ON e.id = page.id JOIN documents d ON d.id = e.document_id
           ORDER BY e.id""",
        params + [limit, offset],
    ).fetchdf()


def get_example(con, example_id: int) -> dict | None:
    df = con.execute(
        f"""SELECT e.*, d.title, d.clean_text, d.raw_text, d.n_words, d.n_tokens, d.cluster_id
            {_FROM} WHERE e.id = ?""",
        [example_id],
    ).fetchdf()
    return None if df.empty else df.iloc[0].to_dict()


def ids_where(con, f: ExampleFilter) -> list[int]:
    where, params = f.where()
    return [r[0] for r in con.execute(f"SELECT e.id {_FROM} WHERE {where}", params).fetchall()]


def update_summary(con, example_id: int, summary: str, user: str | None = None):
    con.execute(
        "UPDATE examples SET summary = ?, n_summary_words = ?, updated_at = current_timestamp, "
        "updated_by = ? WHERE id = ?",
        [summary, len(summary.split()), user, example_id],
    )


def set_status(con, example_ids: list[int], status: str, user: str | None = None) -> int:
    if status not in STATUSES:
        raise ValueError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
    return con.execute(
        "UPDATE examples SET status = ?, updated_at = current_timestamp, updated_by = ? "
        "WHERE id IN (SELECT unnest(?))",
        [status, user, list(example_ids)],
    ).fetchone()[0]


def add_tag(con, example_ids: list[int], tag: str) -> int:
    return con.execute(
        "UPDATE examples SET tags = list_append(tags, ?) "
        "WHERE id IN (SELECT unnest(?)) AND NOT list_contains(tags, ?)",
        [tag, list(example_ids), tag],
    ).fetchone()[0]


def remove_tag(con, example_ids: list[int], tag: str) -> int:
    return con.execute(
        "UPDATE examples SET tags = list_filter(tags, t -> t <> ?) "
        "WHERE id IN (SELECT unnest(?)) AND list_contains(tags, ?)",
        [tag, list(example_ids), tag],
    ).fetchone()[0]


def examples_for_flags(con, batch_size: int = 5_000, since_id: int = 0):
    """Yield (id, document, summary, n_tokens) batches for recomputing quality flags
    (keyset pagination on the caller's connection; see documents.iter_texts)."""
    last = since_id - 1
    while True:
        batch = con.execute(
            "SELECT e.id, d.clean_text AS document, e.summary, d.n_tokens "
            f"{_FROM} WHERE e.id > ? ORDER BY e.id LIMIT ?",
            [last, batch_size],
        ).fetchdf()
        if batch.empty:
            return
        last = int(batch["id"].iloc[-1])
        yield batch


def max_example_id(con) -> int:
    return con.execute("SELECT coalesce(max(id), 0) FROM examples").fetchone()[0]


def set_flags(con, flags: pd.DataFrame):
    """flags: columns id, flags (list of str)."""
    con.register("_flags", flags)
    try:
        con.execute("UPDATE examples SET flags = f.flags FROM _flags f WHERE examples.id = f.id")
    finally:
        con.unregister("_flags")


def counts_by(con, column: str) -> pd.DataFrame:
    """Example counts by status, split, source or origin."""
    assert column in ("status", "split", "source", "origin")
    return con.execute(
        f"SELECT coalesce({column}, 'none') AS {column}, count(*) AS n FROM examples "
        "GROUP BY 1 ORDER BY 2 DESC"
    ).fetchdf()


def flag_counts(con) -> pd.DataFrame:
    return con.execute(
        "SELECT flag, count(*) AS n FROM (SELECT unnest(flags) AS flag FROM examples) "
        "GROUP BY 1 ORDER BY 2 DESC"
    ).fetchdf()


def length_histogram(con, column: str, bins: int = 30) -> pd.DataFrame:
    """Histogram computed in SQL: document words (`n_words`) or summary words."""
    expr = {"n_words": "d.n_words", "n_summary_words": "e.n_summary_words"}[column]
    return con.execute(
        f"""WITH v AS (SELECT {expr} AS x {_FROM} WHERE e.summary IS NOT NULL
                          OR '{column}' = 'n_words'),
                 r AS (SELECT greatest(1, ceil((max(x) - min(x) + 1) / {bins}))::INT AS w,
                              min(x) AS lo FROM v)
            SELECT lo + floor((x - lo) / w)::INT * w AS words, count(*) AS examples
            FROM v, r GROUP BY 1 ORDER BY 1"""
    ).fetchdf()


def tags_in_use(con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT unnest(tags) AS t FROM examples ORDER BY t"
        ).fetchall()
    ]


def set_tags(con, example_id: int, tags: list[str]):
    con.execute("UPDATE examples SET tags = ? WHERE id = ?", [sorted(set(tags)), example_id])
