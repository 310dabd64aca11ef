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


@pytest.fixture(autouse=True)
def cheap_bcrypt(request, monkeypatch):
    """Password hashes at bcrypt cost 4 instead of the app's 12 in this process (a quarter of a
    second each adds minutes to the suite); servers the tests start keep the real cost, and a
    test of the login's timing opts out with the `real_bcrypt` marker."""
    if request.node.get_closest_marker("real_bcrypt"):
        return
    import bcrypt

    from engine import auth

    real_gensalt = bcrypt.gensalt
    monkeypatch.setattr(bcrypt, "gensalt", lambda rounds=12, prefix=b"2b": real_gensalt(4, prefix))
    monkeypatch.setattr(auth, "DUMMY_HASH", bcrypt.hashpw(b"x", real_gensalt(4)))


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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """SmolLM2's tokenizer and architecture (Llama, tied embeddings), 2 layers of width 64."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, set_seed

    from engine.models.embedded import GGUF_FILE, gguf_location

    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = AutoTokenizer.from_pretrained(gguf_location(), gguf_file=GGUF_FILE)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    set_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def signed_in_app(name: str, role: str, page: str | None = None):
    """The app (streamlit_app.py, its frame and gate) signed in as `name` through the session
    cookie the login form would have handed out, on `page` if given. Creates the account."""
    from streamlit.testing.v1 import AppTest

    from engine.auth import create_user, start_session
    from engine.paths import db_path
    from store import users as users_store

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()  # the first visit opens the store and loads the sample set
    con = store.connect(db_path())  # same process: the app's database instance
    if users_store.get_user(con, name) is None:
        create_user(con, name, "correct horse", role)
    at.session_state["login_cookie"] = start_session(con, name)
    at.run()
    return at.switch_page(page).run() if page else at


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright, for the journey tests (tests/browser.py); skipped
    when either is missing."""
    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
