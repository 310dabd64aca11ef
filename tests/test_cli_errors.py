"""The CLI's edge (engine/__main__.py main): bad input (a TuneloopError) or a database that
cannot be opened is one `error: …` line and exit 1; bad arguments are argparse's usage error
(exit 2); anything else is a bug and raises with its traceback, a plain ValueError included."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import store
from engine.__main__ import main
from engine.data import cli as data_cli
from engine.errors import TuneloopError
from tests.conftest import ROOT


def test_bad_input_is_one_error_line_and_exit_1(home, capsys):
    assert main(["jobs", "cancel"]) == 1  # engine/__main__.py
    assert capsys.readouterr().err == (
        "error: Name the job to cancel: python -m engine jobs cancel RUN_ID\n"
    )
    assert main(["split", "--validation", "0.6", "--test", "0.5"]) == 1  # engine/data/split.py
    assert "must leave some data for training" in capsys.readouterr().err
    assert main(["users", "delete", "nobody"]) == 1  # engine/auth.py AuthProblem
    assert capsys.readouterr().err == "error: There is no user called 'nobody'.\n"
    assert main(["keys", "revoke", "nobody"]) == 1  # engine/serving/keys.py
    assert "No key called 'nobody'" in capsys.readouterr().err
    assert main(["import", str(home / "missing.jsonl")]) == 1  # ImportProblem
    assert capsys.readouterr().err.startswith("error: ")


def test_a_database_that_cannot_be_opened_is_an_error_line(home, monkeypatch, capsys):
    def held(path):
        raise store.StoreUnavailable(f"Cannot open the database {path}: another process holds it.")

    monkeypatch.setattr(store, "connect", held)
    assert main(["stats"]) == 1
    assert "another process holds it" in capsys.readouterr().err


def test_bad_arguments_are_usage_errors(home, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["split", "--seed", "thirteen"])
    assert refused.value.code == 2 and "invalid int value" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # engine/training/cli.py parses its lists
        main(["sweep", "--learning-rates", "1e-4,fast"])
    assert refused.value.code == 2 and "--learning-rates" in capsys.readouterr().err


@pytest.mark.parametrize("bug", [ZeroDivisionError, KeyError, ValueError, RuntimeError])
def test_a_bug_raises_with_its_traceback(home, monkeypatch, capsys, bug):
    def broken(con, args):
        raise bug("planted")

    monkeypatch.setattr(data_cli, "cmd_stats", broken)
    with pytest.raises(bug, match="planted"):
        main(["stats"])
    assert "error:" not in capsys.readouterr().err


def test_user_facing_errors_share_one_base_that_the_pages_still_catch_as_valueerror():
    from engine.auth import AuthProblem, PermissionDenied, TooManyAttempts
    from engine.data.editing import StaleEdit
    from engine.data.sources import BadRow, ImportProblem

    for kind in (AuthProblem, PermissionDenied, TooManyAttempts, ImportProblem, BadRow, StaleEdit):
        assert issubclass(kind, TuneloopError), kind
    assert issubclass(TuneloopError, ValueError)


def test_as_a_program_bad_input_has_no_traceback_and_a_bug_has_one(home):
    env = os.environ | {"TUNELOOP_HOME": str(home)}

    def run(*argv):
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    bad = run(sys.executable, "-m", "engine", "jobs", "cancel")
    assert bad.returncode == 1 and "error: Name the job to cancel" in bad.stderr
    assert "Traceback" not in bad.stderr
    planted = (
        "import sys\n"
        "from engine.data import cli\n"
        "cli.cmd_stats = lambda con, args: {}['planted']\n"
        "from engine.__main__ import main\n"
        "sys.exit(main(['stats']))\n"
    )
    bug = run(sys.executable, "-c", planted)
    assert bug.returncode != 0
    assert "Traceback" in bug.stderr and "KeyError: 'planted'" in bug.stderr
    assert "error:" not in bug.stderr
