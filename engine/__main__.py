"""Command line for every job the pages can start: `python -m engine COMMAND --help`.

python -m engine import data.jsonl [--document-column text] [--skip-bad-rows]
python -m engine clean [--remove-citations]
python -m engine dedupe [--threshold 0.8] [--semantic]
python -m engine resolve --policy accepted|longest|newest
python -m engine split [--seed 13] [--validation 0.1] [--test 0.1] [--reset]
python -m engine export [--dataset ID] [--out DIR]
python -m engine stats
python -m engine users add|passwd|disable|enable|delete|logout NAME, users list
python -m engine draft [--model ID] [--limit N]     (runs the drafting worker, then ingests)
python -m engine draft-worker RUN_DIR                (the background worker itself)
python -m engine retrain                             (one-click retrain, last good config)
python -m engine sweep [--trials 6] [--use-best]
python -m engine eval [--model ID] [--dataset N]     (runs the evaluation worker, then ingests)
python -m engine compare [RUN_A RUN_B | --models A B] [--report out.html]
python -m engine promote MODEL [--override-reason TEXT]
python -m engine export-model MODEL OUT [--archive] [--push-to-hub OWNER/NAME]
python -m engine jobs list|run|cancel [RUN_ID]       (the job queue, as the app's poller runs it)
"""

from __future__ import annotations

import argparse
import sys

from engine.paths import db_path


def _progress(done, total):
    if total:
        print(f"\r  {done:,} / {total:,}", end="", file=sys.stderr, flush=True)


def cmd_import(con, args):
    from engine.curation import import_file
    from engine.importers import ColumnMap

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
    from engine.clean import CleanSettings
    from engine.curation import clean_documents

    settings = CleanSettings(remove_citations=args.remove_citations)
    report = clean_documents(con, settings, progress=_progress)
    print(file=sys.stderr)
    print(
        f"Cleaned {report.n_documents:,} documents: {report.n_changed:,} changed, "
        f"{report.n_repeated_lines} repeated header/footer lines found, {report.seconds:.1f} s."
    )


def cmd_dedupe(con, args):
    from engine.dedupe import DedupeSettings
    from engine.duplicates import dedupe_documents

    settings = DedupeSettings(threshold=args.threshold, semantic=args.semantic)
    r = dedupe_documents(con, settings)
    print(
        f"{r.n_documents:,} documents: {r.n_clusters:,} duplicate clusters holding "
        f"{r.n_in_clusters:,} documents; pairs {r.pairs}; {r.seconds:.1f} s."
    )


def cmd_resolve(con, args):
    from engine.duplicates import resolve_all

    print(f"Rejected {resolve_all(con, args.policy):,} duplicate examples ({args.policy}).")


def cmd_split(con, args):
    from engine.split import SplitSettings, split_examples

    counts = split_examples(con, SplitSettings(args.seed, args.validation, args.test), args.reset)
    print(", ".join(f"{k}: {v:,}" for k, v in counts.items()))


def cmd_export(con, args):
    from engine.export import export_dataset

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


def _read_password(args) -> str:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise ValueError("The two passwords differ; nothing changed.")
    return password


def cmd_users(con, args):
    from engine import auth
    from engine.paths import data_dir

    if args.action == "list":
        print(auth.list_accounts(con).to_string(index=False))
    elif args.action == "add":
        auth.create_user(con, args.name, _read_password(args), args.role)
        auth.finish_setup(con, data_dir())  # the first account makes the setup token moot
        print(f"Added {args.name} ({args.role}).")
    elif args.action == "passwd":
        auth.reset_password(con, auth.CONSOLE, args.name, _read_password(args))
        print(f"Changed {args.name}'s password; their sessions ended.")
    elif args.action in ("disable", "enable"):
        auth.set_disabled(con, auth.CONSOLE, args.name, args.action == "disable")
        print(f"{args.action.capitalize()}d {args.name}.")
    elif args.action == "delete":
        auth.delete_user(con, auth.CONSOLE, args.name)
        print(f"Deleted {args.name}.")
    elif args.action == "logout":
        n = auth.log_out_user(con, auth.CONSOLE, args.name)
        print(f"Ended {n} session(s) of {args.name}.")


def cmd_draft(con, args):

    from engine.generate import GenerationSettings
    from engine.labelling import start_drafting
    from engine.registry import ensure_default_model, production_model
    from engine.scheduler import wait_for

    ensure_default_model(con)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    run_id = start_drafting(con, args.model or production_model(con), settings, limit=args.limit)
    print(f"Drafting run {run_id} started; Ctrl+C cancels it.", file=sys.stderr)
    try:
        state = wait_for(con, run_id)
    except KeyboardInterrupt:
        from engine.runs import cancel_run

        cancel_run(con, run_id)
        print("Cancel requested: the worker stops after its current token.", file=sys.stderr)
        state = wait_for(con, run_id)
    print(f"Run {run_id}: {state.state}" + (f" ({state.reason})" if state.reason else ""))
    if state.state == "failed":
        raise RuntimeError(f"Drafting run {run_id} failed.")


def cmd_retrain(con, args):

    from engine.scheduler import wait_for
    from engine.training import retrain_latest
    from store import runs as runs_store

    run_id, warnings = retrain_latest(con)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"Training run {run_id} queued.", file=sys.stderr)
    state = wait_for(con, run_id, every_s=2)
    if not runs_store.active_runs(con).empty:
        print(
            "Follow-up evaluations are queued: they run while the app is open, or now with "
            "`python -m engine jobs run`.",
            file=sys.stderr,
        )
    print(f"Run {run_id}: {state.state}" + (f" ({state.reason})" if state.reason else ""))
    if state.state == "failed":
        raise RuntimeError(f"Training run {run_id} failed.")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def cmd_sweep(con, args):
    import time

    from engine.registry import ensure_default_model
    from engine.scheduler import tick
    from engine.sweep import SweepSpace, start_sweep, sweep_results, use_best
    from engine.train_config import PRESETS, TrainConfig
    from engine.training import default_config
    from store import sweeps as sweeps_store

    base = default_config(con)
    if args.preset:
        base = TrainConfig.from_dict(base.to_dict() | PRESETS[args.preset])
    space = SweepSpace(
        learning_rates=_floats(args.learning_rates),
        epochs=_floats(args.epochs),
        lora_ranks=[int(v) for v in _floats(args.ranks)],
        n_trials=args.trials,
        method=args.method,
        seed=args.seed,
    )
    model = args.base_model or ensure_default_model(con, progress=lambda m: None)
    sweep_id = start_sweep(con, base, model, space)
    print(f"Sweep {sweep_id}: {space.planned_trials()} trials queued one by one.", file=sys.stderr)
    while sweeps_store.get_sweep(con, sweep_id)["state"] == "running":
        tick(con)
        time.sleep(2)
    print(sweep_results(con, sweep_id).to_string(index=False))
    if args.use_best:
        config = use_best(con, sweep_id)
        print(
            f"Next retrain uses learning rate {config.learning_rate:g}, "
            f"{config.epochs:g} epochs, rank {config.lora_r}."
        )


def cmd_jobs(con, args):
    """What the app's background poller does, from the console: list the queue, work through
    it until nothing is queued or running (follow-up evaluations included), or cancel a job."""
    import time

    from engine.runs import cancel_run
    from engine.scheduler import tick
    from store import runs as runs_store

    if args.action == "cancel":
        if not args.run_id or runs_store.get_run(con, args.run_id) is None:
            raise ValueError("Name the job to cancel: python -m engine jobs cancel RUN_ID")
        cancel_run(con, args.run_id)
        print(f"Cancel requested for {args.run_id}.")
        return
    while args.action == "run":
        for run in tick(con):
            print(f"{run['id']}: {run['state']}" + (f" ({run['reason']})" if run["reason"] else ""))
        if runs_store.active_runs(con).empty:
            break
        time.sleep(2)
    active = runs_store.active_runs(con)
    print("No jobs queued or running." if active.empty else active.to_string(index=False))


def cmd_eval(con, args):
    import json
    from dataclasses import replace

    from engine.evaluation import EVAL_SETTINGS, start_evaluation
    from engine.registry import ensure_default_model, production_model
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
        raise RuntimeError(f"Evaluation {run_id} did not succeed.")
    aggregates = json.loads(evals_store.get_evaluation(con, run_id)["aggregates"])
    for name, value in aggregates.items():
        if isinstance(value, dict):
            print(f"{name:18} {value['mean']:.4f}  [{value['low']:.4f}, {value['high']:.4f}]")


def cmd_compare(con, args):
    from engine.evaluation import compare_runs, latest_evaluation

    if args.models:
        runs_ = [latest_evaluation(con, m, args.dataset) for m in args.models]
        missing = [m for m, r in zip(args.models, runs_) if r is None]
        if missing:
            raise ValueError(f"No finished evaluation of {', '.join(missing)}: run `eval` first.")
    elif len(args.runs) == 2:
        runs_ = args.runs
    else:
        raise ValueError("Name two evaluation runs, or two models with --models A B.")
    comparison = compare_runs(con, *runs_)
    columns = ["metric", "a_mean", "b_mean", "delta", "delta_low", "delta_high", "p_value"]
    print(
        f"A = {comparison.model_a} ({runs_[0]}), B = {comparison.model_b} ({runs_[1]}), "
        f"{len(comparison.pairs)} test documents of dataset v{comparison.dataset_id}"
    )
    print(comparison.table[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.report:
        from pathlib import Path

        from engine.preference import win_rates
        from engine.report import comparison_html

        Path(args.report).write_text(comparison_html(comparison, win_rates(con)), encoding="utf-8")
        print(f"Report written to {args.report}")


def cmd_promote(con, args):
    from engine.auth import CONSOLE
    from engine.evaluation import promote

    evidence = promote(con, args.model, CONSOLE, args.override_reason or "", args.dataset)
    if evidence:
        print(
            f"ROUGE-L against the previous production model: {evidence['difference']:+.4f} "
            f"(95% CI {evidence['low']:+.4f} to {evidence['high']:+.4f})."
        )
    print(f"{args.model} is now the production model.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    p = sub.add_parser("users", help="manage accounts")
    users = p.add_subparsers(dest="action", required=True)
    users.add_parser("list", help="accounts, their state and open sessions").set_defaults(
        run=cmd_users
    )
    for action, text in [
        ("add", "add a user (asks for the password)"),
        ("passwd", "set a user's password (asks for it); their sessions end"),
        ("disable", "refuse the user's logins and end their sessions"),
        ("enable", "allow a disabled user to log in again"),
        ("delete", "delete an account (not the last admin); what it did stays"),
        ("logout", "end every session of a user"),
    ]:
        p = users.add_parser(action, help=text)
        p.add_argument("name")
        if action == "add":
            p.add_argument("--role", default="reviewer", choices=["reviewer", "admin"])
        if action in ("add", "passwd"):
            p.add_argument("--password-stdin", action="store_true", help="read it from stdin")
        p.set_defaults(run=cmd_users)
    p = sub.add_parser("draft", help="draft summaries for documents without one")
    p.add_argument("--model", help="a registered model id (default: the production model)")
    p.add_argument("--limit", type=int)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.set_defaults(run=cmd_draft)
    p = sub.add_parser("retrain", help="train on the latest accepted data, last good config")
    p.set_defaults(run=cmd_retrain)
    p = sub.add_parser("sweep", help="search learning rate, epochs and LoRA rank; run to the end")
    p.add_argument("--learning-rates", default="1e-4,3e-4,1e-3", help="comma-separated")
    p.add_argument("--epochs", default="1,2", help="comma-separated")
    p.add_argument("--ranks", default="8,16", help="comma-separated LoRA ranks")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--method", default="tpe", choices=["tpe", "grid"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", help="start from a preset instead of the last good settings")
    p.add_argument("--base-model", help="a registered model id (default: the embedded one)")
    p.add_argument("--use-best", action="store_true", help="make the winner the retrain default")
    p.set_defaults(run=cmd_sweep)
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
    p = sub.add_parser("jobs", help="the job queue: list, run it to the end, cancel a job")
    p.add_argument("action", choices=["list", "run", "cancel"])
    p.add_argument("run_id", nargs="?", help="the job to cancel")
    p.set_defaults(run=cmd_jobs)
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
    from engine import model_export

    model_export.add_cli(sub)
    return parser


WORKERS = {  # background workers: they never open the database
    "draft-worker": "engine.draft",
    "train": "engine.train",
    "eval-worker": "engine.evaluate",
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in WORKERS:
        import importlib

        return importlib.import_module(WORKERS[argv[0]]).main(argv[1:])
    from engine.importers import ImportProblem
    from store import connect

    args = build_parser().parse_args(argv)
    try:
        con = connect(db_path())
        args.run(con, args)
    except (ImportProblem, ValueError, RuntimeError) as e:  # AuthProblem is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
