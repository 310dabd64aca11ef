"""The data stage's commands: import, clean, dedupe, resolve, split, export, stats.

Registered by engine/__main__.py: `python -m engine COMMAND --help`.
"""

from __future__ import annotations

import sys

from engine.paths import db_path


def _progress(done, total):
    if total:
        print(f"\r  {done:,} / {total:,}", end="", file=sys.stderr, flush=True)


def cmd_import(con, args):
    from engine.data.imports import import_file
    from engine.data.sources import ColumnMap

    mapping = None
    if args.document_column:
        mapping = ColumnMap(args.document_column, args.summary_column, args.title_column)
    report = import_file(
        con,
        args.path,
        mapping,
        skip_bad_rows=args.skip_bad_rows,
        status=args.status,
        progress=_progress,
    )
    print(file=sys.stderr)
    print(report.message())


def cmd_clean(con, args):
    from engine.data.clean import CleanSettings
    from engine.data.curation import clean_documents

    settings = CleanSettings(remove_citations=args.remove_citations)
    report = clean_documents(con, settings, progress=_progress)
    print(file=sys.stderr)
    print(
        f"Cleaned {report.n_documents:,} documents: {report.n_changed:,} changed, "
        f"{report.n_repeated_lines} repeated header/footer lines found, {report.seconds:.1f} s."
    )


def cmd_dedupe(con, args):
    from engine.data.dedupe import dedupe_documents
    from engine.data.similarity import DedupeSettings

    settings = DedupeSettings(threshold=args.threshold, semantic=args.semantic)
    r = dedupe_documents(con, settings)
    print(
        f"{r.n_documents:,} documents: {r.n_clusters:,} duplicate clusters holding "
        f"{r.n_in_clusters:,} documents; pairs {r.pairs}; {r.seconds:.1f} s."
    )


def cmd_resolve(con, args):
    from engine.data.dedupe import resolve_all

    print(f"Rejected {resolve_all(con, args.policy):,} duplicate examples ({args.policy}).")


def cmd_split(con, args):
    from engine.data.split import SplitSettings, split_examples

    counts = split_examples(con, SplitSettings(args.seed, args.validation, args.test), args.reset)
    print(", ".join(f"{k}: {v:,}" for k, v in counts.items()))


def cmd_export(con, args):
    from engine.data.export import export_dataset

    dataset_id, out, counts = export_dataset(con, args.dataset, args.out)
    print(f"Dataset version {dataset_id} written to {out}: {counts}")


def cmd_stats(con, args):
    from store import duplicates as dup_store
    from store import examples as ex

    print(f"database: {db_path()}")
    for column in ("status", "split", "source"):
        print(ex.counts_by(con, column).to_string(index=False), "\n")
    print(ex.flag_counts(con).to_string(index=False), "\n")
    clusters, members = dup_store.count_clusters(con)
    print(f"duplicate clusters: {clusters:,} ({members:,} documents)")


def add_commands(sub):
    """Add this stage's subcommands to the `python -m engine` parser."""
    p = sub.add_parser("import", help="import a JSONL/CSV/Parquet file, a folder or a HF dataset")
    p.add_argument("path")
    p.add_argument("--document-column")
    p.add_argument("--summary-column")
    p.add_argument("--title-column")
    p.add_argument("--skip-bad-rows", action="store_true")
    p.add_argument("--status", default="pending", choices=["pending", "accepted"])
    p.set_defaults(run=cmd_import)
    p = sub.add_parser("clean", help="clean every document (raw text is kept)")
    p.add_argument("--remove-citations", action="store_true")
    p.set_defaults(run=cmd_clean)
    p = sub.add_parser("dedupe", help="find exact, near and (optionally) semantic duplicates")
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--semantic", action="store_true")
    p.set_defaults(run=cmd_dedupe)
    p = sub.add_parser("resolve", help="keep one example per duplicate cluster")
    p.add_argument("--policy", required=True, choices=["accepted", "longest", "newest"])
    p.set_defaults(run=cmd_resolve)
    p = sub.add_parser("split", help="split train/validation/test by duplicate cluster")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--validation", type=float, default=0.1)
    p.add_argument("--test", type=float, default=0.1)
    p.add_argument("--reset", action="store_true", help="re-split everything")
    p.set_defaults(run=cmd_split)
    p = sub.add_parser("export", help="freeze and export a dataset version (JSONL + HF dataset)")
    p.add_argument("--dataset", type=int, help="an existing dataset version (default: new)")
    p.add_argument("--out")
    p.set_defaults(run=cmd_export)
    sub.add_parser("stats", help="counts by status, split, source and flag").set_defaults(
        run=cmd_stats
    )
