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
python -m engine next [--limit N]                    (what to label next, and why)
python -m engine savings                             (review effort per model)
python -m engine retrain                             (one-click retrain, last good config)
python -m engine sweep [--trials 6] [--use-best]
python -m engine eval [--model ID] [--dataset N]     (runs the evaluation worker, then ingests)
python -m engine compare [RUN_A RUN_B | --models A B] [--report out.html]
python -m engine promote MODEL [--override-reason TEXT]
python -m engine export-model MODEL OUT [--archive] [--push-to-hub OWNER/NAME]
python -m engine jobs list|run|cancel [RUN_ID]       (the job queue, as the app's poller runs it)
python -m engine serve [--host H] [--port P]         (the OpenAI-compatible API, foreground)
python -m engine keys create|list|revoke [NAME]     (the API server's keys)
"""

from __future__ import annotations

import argparse
import os
import sys

from engine.data import cli as data_cli
from engine.errors import TuneloopError
from engine.evaluation import cli as evaluation_cli
from engine.labelling import cli as labelling_cli
from engine.paths import db_path
from engine.serving import cli as serving_cli
from engine.training import cli as training_cli


def _read_password(args) -> str:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise TuneloopError("The two passwords differ; nothing changed.")
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


def cmd_jobs(con, args):
    """What the app's background poller does, from the console: list the queue, work through
    it until nothing is queued or running (follow-up evaluations included), or cancel a job."""
    import time

    from engine.jobs.runqueue import cancel_run
    from engine.scheduler import tick
    from store import runs as runs_store

    if args.action == "cancel":
        if not args.run_id or runs_store.get_run(con, args.run_id) is None:
            raise TuneloopError("Name the job to cancel: python -m engine jobs cancel RUN_ID")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in (data_cli, labelling_cli, training_cli, evaluation_cli, serving_cli):
        stage.add_commands(sub)
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
    p = sub.add_parser("jobs", help="the job queue: list, run it to the end, cancel a job")
    p.add_argument("action", choices=["list", "run", "cancel"])
    p.add_argument("run_id", nargs="?", help="the job to cancel")
    p.set_defaults(run=cmd_jobs)
    from engine.serving import export as model_export

    model_export.add_commands(sub)
    return parser


WORKERS = {  # background workers: they never open the database
    "draft-worker": "engine.labelling.worker",
    "train": "engine.training.worker",
    "eval-worker": "engine.evaluation.worker",
    "serve-worker": "engine.serving.worker",
}


def main(argv=None) -> int:
    """Run one command. A TuneloopError (a message for people) or a database that cannot be
    opened prints `error: …` and returns 1; argparse answers bad arguments itself (exit 2);
    anything else is a bug and raises with its traceback."""
    argv = sys.argv[1:] if argv is None else argv
    os.umask(0o077)  # what the engine writes in the data folder is for its owner only
    if argv and argv[0] in WORKERS:
        import importlib

        return importlib.import_module(WORKERS[argv[0]]).main(argv[1:])
    from store import StoreUnavailable, connect

    args = build_parser().parse_args(argv)
    try:
        con = connect(db_path())
        args.run(con, args)
    except (TuneloopError, StoreUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
