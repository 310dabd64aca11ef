"""The documentation keeps up with the code (in the spirit of sqlite-utils' test_docs.py): every
CLI command, every TUNELOOP_* variable the source reads and every training setting appears in
the README or docs/, and the README's links lead to files that exist."""

from __future__ import annotations

import argparse
import dataclasses
import re

from tests.conftest import ROOT

SOURCES = ["engine", "store", "ui", "pages"]


def docs_text() -> str:
    paths = [ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md")]
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)


def commands(parser: argparse.ArgumentParser, prefix: tuple = ()) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += commands(sub, (*prefix, name))
    return found


def test_every_cli_command_is_documented():
    from engine.__main__ import WORKERS, build_parser

    text = docs_text()
    missing = []
    for command in commands(build_parser()):
        if command[0] in WORKERS:
            continue
        if len(command) == 1:
            found = f"`{command[0]}`" in text or f"engine {command[0]}" in text
        else:  # a sub-action: named on a line with its command
            found = any(
                command[0] in line and re.search(rf"\b{re.escape(command[-1])}\b", line)
                for line in text.splitlines()
            )
        if not found:
            missing.append(" ".join(command))
    assert not missing, f"CLI commands the docs never name: {missing}"


def test_every_environment_variable_is_in_the_readme_table():
    read = set()
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            read |= set(re.findall(r"TUNELOOP_[A-Z_]+", path.read_text(encoding="utf-8")))
    read |= set(re.findall(r"TUNELOOP_[A-Z_]+", (ROOT / "streamlit_app.py").read_text()))
    table = {
        m for m in re.findall(r"^\| `(TUNELOOP_[A-Z_]+)`", (ROOT / "README.md").read_text(), re.M)
    }
    assert read - table == set(), f"read in the source, missing from the README: {read - table}"
    assert table - read == set(), f"in the README, read nowhere: {table - read}"


def test_every_training_setting_is_documented():
    from engine.training.config import TrainConfig

    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    missing = [f.name for f in dataclasses.fields(TrainConfig) if f"`{f.name}`" not in text]
    assert not missing, f"TrainConfig fields missing from docs/training.md: {missing}"


def test_the_readme_links_lead_to_files_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#:]+)\)", readme)
    assert links and all((ROOT / link).exists() for link in links), links
    assert len(readme.splitlines()) <= 200  # a front door, not the manual
