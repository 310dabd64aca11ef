"""Examples: a document with its reference summary, review status, split, tags and flags.

Listing is paginated in SQL (`page_examples`), so the Curate page never loads the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from store import history

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
                "(coalesce(d.title, '') ILIKE ? ESCAPE '\\' OR coalesce(e.summary, '') ILIKE ? "
                "ESCAPE '\\' OR d.clean_text ILIKE ? ESCAPE '\\')"
            )
            params += [f"%{like_literal(self.search)}%"] * 3
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


def like_literal(text: str) -> str:
    """`text` as a LIKE pattern that matches only itself: %, _ and the escape character \\
    are escaped (the queries say ESCAPE '\\'), so a search for "50%" finds "50%"."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_FROM = "FROM examples e JOIN documents d ON d.id = e.document_id"


_REQUIRED = ("document_id", "summary", "origin", "source", "status", "content_hash",
             "n_summary_words")  # fmt: skip
_OPTIONAL = ("flags", "parent_id", "updated_by")


def add_examples(con, rows) -> int:
    """The one way into the examples table (tests/test_identity.py checks): insert the rows (a
    DataFrame or Arrow table with the _REQUIRED columns and any of the _OPTIONAL ones) whose
    content_hash (engine/data/keys.py) is not stored yet, the first of a batch's repeats;
    return how many were new. A UNIQUE index on content_hash backs the rule."""
    names = rows.column_names if hasattr(rows, "column_names") else list(rows.columns)
    assert set(_REQUIRED) <= set(names), f"add_examples needs the columns {_REQUIRED}"
    columns = ", ".join([*_REQUIRED, *(c for c in _OPTIONAL if c in names)])
    con.register("_new_examples", rows)
    try:
        return con.execute(
            f"""INSERT INTO examples ({columns})
               SELECT {columns}
               FROM (SELECT *, row_number() OVER (PARTITION BY content_hash) AS k
                     FROM _new_examples)
               WHERE k = 1 AND content_hash NOT IN (SELECT content_hash FROM examples)"""
        ).fetchone()[0]
    finally:
        con.unregister("_new_examples")


def add_example(
    con,
    document_id: str,
    summary: str,
    content_hash: str,
    *,
    origin: str,
    source: str,
    status: str,
    parent_id: int | None = None,
    user: str | None = None,
) -> tuple[int, bool]:
    """One example (a review's correction, an accepted feedback), unless its content_hash is
    stored already: (the id of the new or of the stored example, whether it is new). A new
    one's history starts with a 'created' row naming `user`."""
    _check_status(status)
    row = dict(document_id=document_id, summary=summary, origin=origin, source=source,
               status=status, content_hash=content_hash, n_summary_words=len(summary.split()),
               parent_id=parent_id, updated_by=user)  # fmt: skip
    new = add_examples(con, pd.DataFrame([row])) > 0
    example_id = ids_by_hashes(con, [content_hash])[content_hash]
    if new:
        history.record_created(con, example_id, summary, user)
    return example_id, new


def ids_by_hashes(con, content_hashes: list[str]) -> dict[str, int]:
    """{content hash: example id} for those of the hashes that are stored (one each)."""
    rows = con.execute(
        "SELECT content_hash, id FROM examples WHERE content_hash IN (SELECT unnest(?))",
        [list(content_hashes)],
    ).fetchall()
    return dict(rows)


def hash_inputs(con, example_ids: list[int]) -> pd.DataFrame:
    """What the examples' content hashes are made of, and the stored ones: id, document_id,
    summary, content_hash."""
    return con.execute(
        "SELECT id, document_id, summary, content_hash FROM examples "
        "WHERE id IN (SELECT unnest(?)) ORDER BY id",
        [[int(i) for i in example_ids]],
    ).fetchdf()


def set_content_hashes(con, rows: pd.DataFrame):
    """rows: id, content_hash (of each one's document and summary now)."""
    con.register("_hashes", rows[["id", "content_hash"]])
    try:
        con.execute(
            "UPDATE examples SET content_hash = h.content_hash FROM _hashes h "
            "WHERE examples.id = h.id"
        )
    finally:
        con.unregister("_hashes")


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


def get_state(con, example_id: int) -> dict | None:
    """What an editor saves over: summary, status, tags, version, updated_by, updated_at."""
    cur = con.execute(
        "SELECT summary, status, tags, version, updated_by, updated_at FROM examples WHERE id = ?",
        [example_id],
    )
    rows = cur.fetchall()  # fetchall: a half-read result blocks the connection's next register()
    return dict(zip([c[0] for c in cur.description], rows[0])) if rows else None


# Every change below writes one history row per example it changes and steps its version, so
# an editor that started from an older version is refused (engine/data/editing.py). None of them
# starts a transaction: callers wrap the history row and the change in one.

_VALUE = {"summary": "$value::VARCHAR", "status": "$value::VARCHAR", "tags": "$value::VARCHAR[]"}


def _change(
    con, field, new_sql, where, values, user=None, batch_id=None, note=None, step=True
) -> int:
    """Set `field` to `new_sql` (SQL over the row `e`) on the examples `where` selects, where
    that changes it. Returns how many changed."""
    old, new = history.as_stored(field, f"e.{field}"), history.as_stored(field, new_sql)
    changed = f"({where}) AND {old} IS DISTINCT FROM {new}"
    values = {**values, "user": user, "batch": batch_id, "note": note}
    history.record(con, field, new_sql, changed, values)
    words = ""
    if field == "summary":
        words = f", n_summary_words = len(regexp_extract_all(coalesce({new_sql}, ''), '\\S+'))"
    sql = (
        f"UPDATE examples AS e SET {field} = {new_sql}{words}, "
        f"version = e.version + {int(step)}, updated_at = current_timestamp, "
        f"updated_by = $user WHERE {changed}"
    )
    return con.execute(sql, history.named(sql, values)).fetchone()[0]


def _check_status(status: str):
    if status not in STATUSES:
        raise ValueError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")


def update_example(
    con, example_id: int, changes: dict, user: str | None = None, note: str | None = None
) -> int:
    """Change any of summary, status and tags (`changes`: field -> value; a summary of None
    means none yet) of one example, in one version step. Returns its version afterwards."""
    if "status" in changes:
        _check_status(changes["status"])
    n = 0
    for field, value in changes.items():
        n += _change(
            con,
            field,
            _VALUE[field],
            "e.id = $id",
            {"id": example_id, "value": value},
            user,
            note=note,
            step=False,
        )
    if n:
        con.execute("UPDATE examples SET version = version + 1 WHERE id = ?", [example_id])
    rows = con.execute("SELECT version FROM examples WHERE id = ?", [example_id]).fetchall()
    if not rows:
        raise ValueError(f"No example {example_id}.")
    return rows[0][0]


def update_summary(con, example_id: int, summary: str | None, user: str | None = None) -> int:
    return update_example(con, example_id, {"summary": summary}, user)


def set_tags(con, example_id: int, tags: list[str], user: str | None = None) -> int:
    return update_example(con, example_id, {"tags": sorted(set(tags))}, user)


_IDS = "e.id IN (SELECT unnest($ids))"


def set_status(
    con, example_ids: list[int], status: str, user: str | None = None, batch_id: int | None = None
) -> int:
    """Set the status of many examples; return how many changed (those already in it do not)."""
    _check_status(status)
    values = {"ids": [int(i) for i in example_ids], "value": status}
    return _change(con, "status", "$value::VARCHAR", _IDS, values, user, batch_id)


def add_tag(
    con, example_ids: list[int], tag: str, user: str | None = None, batch_id: int | None = None
) -> int:
    values = {"ids": [int(i) for i in example_ids], "value": tag}
    new = "CASE WHEN list_contains(e.tags, $value) THEN e.tags ELSE list_append(e.tags, $value) END"
    return _change(con, "tags", new, _IDS, values, user, batch_id)


def remove_tag(
    con, example_ids: list[int], tag: str, user: str | None = None, batch_id: int | None = None
) -> int:
    values = {"ids": [int(i) for i in example_ids], "value": tag}
    return _change(
        con, "tags", "list_filter(e.tags, lambda t: t <> $value)", _IDS, values, user, batch_id
    )


def restore_changes(
    con, match: str, source_id: int, user: str | None, batch_id=None, note=None
) -> int:
    """Put back the `before` of the history rows whose `match` column (id or batch_id) is
    `source_id`, on each example whose field still holds that row's `after` (a later change is
    never overwritten). Each restore is itself a change. Returns how many were restored."""
    assert match in ("id", "batch_id")
    n = 0
    for field in history.TRACKED:
        rows = (
            f"FROM example_history h WHERE h.{match} = $source AND h.field = '{field}' "
            "AND h.example_id = e.id"
        )
        before = f"(SELECT {history.from_stored(field, 'arg_min_null(h.before, h.id)')} {rows})"
        after = f"(SELECT arg_max_null(h.after, h.id) {rows})"
        where = (
            f"e.id IN (SELECT example_id FROM example_history WHERE {match} = $source "
            f"AND field = '{field}') AND {history.as_stored(field, f'e.{field}')} "
            f"IS NOT DISTINCT FROM {after}"
        )
        n += _change(con, field, before, where, {"source": source_id}, user, batch_id, note)
    return n


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
    """Histogram computed in SQL: document words (`n_words`) or summary words; `words` is where
    each bin starts and `width` its width."""
    expr = {"n_words": "d.n_words", "n_summary_words": "e.n_summary_words"}[column]
    return con.execute(
        f"""WITH v AS (SELECT {expr} AS x {_FROM} WHERE e.summary IS NOT NULL
                          OR '{column}' = 'n_words'),
                 r AS (SELECT greatest(1, ceil((max(x) - min(x) + 1) / {bins}))::INT AS w,
                              min(x) AS lo FROM v)
            SELECT lo + floor((x - lo) / w)::INT * w AS words, any_value(w) AS width,
                   count(*) AS examples
            FROM v, r GROUP BY 1 ORDER BY 1"""
    ).fetchdf()


def tags_in_use(con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT unnest(tags) AS t FROM examples ORDER BY t"
        ).fetchall()
    ]
