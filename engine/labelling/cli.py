"""The labelling stage's commands: draft summaries with a model, what to label next, and the
review effort each model's drafts cost.

Registered by engine/__main__.py: `python -m engine COMMAND --help`.
"""

from __future__ import annotations

import sys

from engine.errors import TuneloopError


def cmd_draft(con, args):

    from engine.labelling.runs import start_drafting
    from engine.models.generation import GenerationSettings
    from engine.models.registry import ensure_default_model, production_model
    from engine.scheduler import wait_for

    ensure_default_model(con)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    run_id = start_drafting(con, args.model or production_model(con), settings, limit=args.limit)
    print(f"Drafting run {run_id} started; Ctrl+C cancels it.", file=sys.stderr)
    try:
        state = wait_for(con, run_id)
    except KeyboardInterrupt:
        from engine.jobs.runqueue import cancel_run

        cancel_run(con, run_id)
        print("Cancel requested: the worker stops after its current token.", file=sys.stderr)
        state = wait_for(con, run_id)
    print(f"Run {run_id}: {state.state}" + (f" ({state.reason})" if state.reason else ""))
    if state.state == "failed":
        raise TuneloopError(f"Drafting run {run_id} failed.")


def cmd_next(con, args):
    from engine.labelling.ordering import next_documents

    order = next_documents(con, args.limit)
    if order.empty:
        print("Nothing to label: every document has a reference summary.")
        return
    for row in order.itertuples():
        title = f"  {row.title}" if isinstance(row.title, str) and row.title else ""
        print(f"{row.rank:>4}  {row.score:.3f}  {row.document_id[:16]}  {row.reason}{title}")


def cmd_savings(con, args):
    from engine.labelling.savings import readable, savings_table

    table = savings_table(con)
    if table.empty:
        print("no reviews yet")
        return
    print("Review effort per model that drafted (decisions: saved or unusable drafts):")
    print(readable(table).to_string(index=False))


def add_commands(sub):
    """Add this stage's subcommands to the `python -m engine` parser."""
    p = sub.add_parser("draft", help="draft summaries for documents without one")
    p.add_argument("--model", help="a registered model id (default: the production model)")
    p.add_argument("--limit", type=int)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.set_defaults(run=cmd_draft)
    p = sub.add_parser("next", help="the documents most useful to label next, with the reason")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(run=cmd_next)
    p = sub.add_parser("savings", help="review effort per model: unchanged drafts, edits, time")
    p.set_defaults(run=cmd_savings)
