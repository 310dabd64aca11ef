"""Shared fixtures: an in-memory migrated store, a temp data folder, and paths to ../shared/data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import store

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CONGRESS_TRAIN = SHARED_DATA / "congress119" / "train.jsonl"
# The embedded default model is converted once per checkout, not once per test's data folder.
os.environ.setdefault("TUNELOOP_MODELS", str(ROOT / ".test-models"))


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def con():
    connection = store.connect(":memory:")
    yield connection
    connection.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty data folder for the app and the CLI."""
    monkeypatch.setenv("TUNELOOP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def congress_train():
    if not CONGRESS_TRAIN.exists():
        pytest.skip("../shared/data is absent")
    return CONGRESS_TRAIN


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
