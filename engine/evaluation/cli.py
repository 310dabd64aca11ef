"""The evaluation stage's commands: evaluate a model, compare two, promote one.

Registered by engine/__main__.py: `python -m engine COMMAND --help`.
"""

from __future__ import annotations

import sys

from engine.errors import TuneloopError


def cmd_eval(con, args):
    import json
    from dataclasses import replace

    from engine.evaluation.runs import EVAL_SETTINGS, start_evaluation
    from engine.models.registry import ensure_default_model, production_model
    from engine.scheduler import wait_for
    from store import evals as evals_store

    ensure_default_model(con, progress=lambda m: None)
    settings = replace(
        EVAL_SETTINGS,
        max_new_tokens=args.max_new_tokens or EVAL_SETTINGS.max_new_tokens,
        batch_size=args.batch_size,
    )
    model = args.model or production_model(con)
    run_id = start_evaluation(
        con, model, args.dataset, settings, args.limit, semantic=not args.no_semantic
    )
    print(f"Evaluation {run_id} of {model} started.", file=sys.stderr)
    state = wait_for(con, run_id)
    print(f"Run {run_id}: {state.state}" + (f" ({state.reason})" if state.reason else ""))
    if state.state != "succeeded":
        raise TuneloopError(f"Evaluation {run_id} did not succeed.")
    aggregates = json.loads(evals_store.get_evaluation(con, run_id)["aggregates"])
    for name, value in aggregates.items():
        if isinstance(value, dict):
            print(f"{name:18} {value['mean']:.4f}  [{value['low']:.4f}, {value['high']:.4f}]")


def cmd_compare(con, args):
    from engine.evaluation.comparison import compare_runs
    from engine.evaluation.runs import latest_evaluation

    if args.models:
        runs_ = [latest_evaluation(con, m, args.dataset) for m in args.models]
        missing = [m for m, r in zip(args.models, runs_) if r is None]
        if missing:
            raise TuneloopError(
                f"No finished evaluation of {', '.join(missing)}: run `eval` first."
            )
    elif len(args.runs) == 2:
        runs_ = args.runs
    else:
        raise TuneloopError("Name two evaluation runs, or two models with --models A B.")
    comparison = compare_runs(con, *runs_)
    columns = ["metric", "a_mean", "b_mean", "delta", "delta_low", "delta_high", "p_value"]
    print(
        f"A = {comparison.model_a} ({runs_[0]}), B = {comparison.model_b} ({runs_[1]}), "
        f"{len(comparison.pairs)} test documents of dataset v{comparison.dataset_id}"
    )
    print(comparison.table[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.report:
        from pathlib import Path

        from engine.evaluation.preference import win_rates
        from engine.evaluation.report import comparison_html
        from engine.labelling.savings import savings_table

        savings = savings_table(con, [comparison.model_a, comparison.model_b])
        html = comparison_html(comparison, win_rates(con), savings=savings)
        Path(args.report).write_text(html, encoding="utf-8")
        print(f"Report written to {args.report}")


def cmd_promote(con, args):
    from engine.auth import CONSOLE
    from engine.followups import promote_and_publish

    evidence = promote_and_publish(
        con, args.model, CONSOLE, args.override_reason or "", args.dataset
    )
    if evidence:
        print(
            f"ROUGE-L against the previous production model: {evidence['difference']:+.4f} "
            f"(95% CI {evidence['low']:+.4f} to {evidence['high']:+.4f})."
        )
    print(f"{args.model} is now the production model.")


def add_commands(sub):
    """Add this stage's subcommands to the `python -m engine` parser."""
    p = sub.add_parser("eval", help="summarize and score the test split with one model")
    p.add_argument("--model", help="a registered model id (default: the production model)")
    p.add_argument(
        "--dataset", type=int, help="dataset version (default: newest with a test split)"
    )
    p.add_argument("--limit", type=int, help="only the first N test documents")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-semantic", action="store_true", help="skip embedding similarity")
    p.set_defaults(run=cmd_eval)
    p = sub.add_parser("compare", help="compare two evaluations on their common test documents")
    p.add_argument("runs", nargs="*", help="two evaluation run ids (A, then B)")
    p.add_argument("--models", nargs=2, metavar=("A", "B"), help="the newest evaluation of each")
    p.add_argument("--dataset", type=int)
    p.add_argument("--report", help="also write a self-contained HTML report here")
    p.set_defaults(run=cmd_compare)
    p = sub.add_parser("promote", help="make a model the production model if it beats it")
    p.add_argument("model")
    p.add_argument("--override-reason", help="promote without beating it, and record why")
    p.add_argument("--dataset", type=int)
    p.set_defaults(run=cmd_promote)
