"""Model export: merged safetensors that plain transformers loads and that generate what the app
generates (a base model and a merged LoRA), the model card's facts, the archive, the CLI, the
admin-only rule, the web button and the push to the Hub (mocked: no network in tests)."""

from __future__ import annotations

import json
import re
import tarfile

import pytest
import yaml

import store
from engine.audit import entries
from engine.auth import PermissionDenied
from engine.models.embedded import DEFAULT_MODEL
from engine.models.generation import GenerationSettings, load_model, summarize_batch
from engine.models.registry import resolve
from engine.paths import db_path
from engine.serving import export as model_export
from store import evals as evals_store
from store import registry as reg_store
from store import runs as runs_store

ADMIN = {"name": "ada", "role": "admin"}
REVIEWER = {"name": "rita", "role": "reviewer"}
DOCUMENTS = [
    "The council approved a budget of $2.4 million on March 3, 2025 for road repairs.",
    "Jane Doe sued Acme Corp after a fall in its warehouse; the court awarded $85,000.",
]
INSTRUCTION = "Summarize this in one sentence. Keep `names` and *amounts* exact."
OVERRIDE = "Reviewers liked it | see <b>notes</b> and [link](http://x) *now*"


@pytest.fixture(scope="module")
def base(tiny_model, tmp_path_factory):
    """The tiny model initialised wider (0.1 instead of 0.02, whose random model answers every
    prompt with the same special token): summaries that differ by document and by model."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM, set_seed

    config = AutoConfig.from_pretrained(tiny_model)
    config.initializer_range = 0.1
    set_seed(0)
    folder = tmp_path_factory.mktemp("base")
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapter(base, tmp_path_factory):
    """A LoRA adapter on the tiny model with random, non-zero weights (no training needed)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, set_seed

    set_seed(1)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type=None
    )
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(folder)
    return folder


def plant(con, base, adapter):
    """The tiny base, a LoRA made by a training run on dataset version 1, an evaluation of the
    LoRA and its promotion, as the store holds them after the app's loop."""
    reg_store.register_model(con, "tiny-base", "base", str(base))
    reg_store.register_model(con, "tiny-lora", "lora", str(adapter), "tiny-base", "train-1")
    dataset = con.execute(
        "INSERT INTO dataset_versions (note, n_train, n_validation, n_test) "
        "VALUES ('planted', 40, 5, 7) RETURNING id"
    ).fetchone()[0]
    config = dict(method="lora", learning_rate=3e-4, epochs=2.0, max_steps=24, max_length=512)
    config |= dict(lora_r=4, lora_alpha=8, instruction=INSTRUCTION, prompt_version=3)
    config |= dict(dataset_version=dataset, base_model_id="tiny-base")
    runs_store.add_run(con, "train-1", "train", "/tmp/train-1", config, "ada")
    runs_store.set_state(con, "train-1", "succeeded")
    finished = {"type": "finished", "time": 1.0, "metrics": {"steps": 24, "best_step": 16}}
    runs_store.add_events(con, "train-1", [finished], 1)
    runs_store.add_run(con, "eval-1", "eval", "/tmp/eval-1", {}, "ada")
    runs_store.set_state(con, "eval-1", "succeeded")
    evals_store.add_evaluation(con, "eval-1", "tiny-lora", dataset, 3, {"max_new_tokens": 160})
    aggregates = {
        "n_documents": 7,
        "rougeL": {"mean": 0.4321, "low": 0.4012, "high": 0.4633},
        "rouge2": {"mean": 0.2109, "low": 0.1876, "high": 0.2345},
        "has_unsupported": {"mean": 0.125, "low": 0.0, "high": 0.375},
        "has_unsupported_numbers": {"mean": 0.0625, "low": 0.0, "high": 0.25},
    }
    evals_store.set_aggregates(con, "eval-1", aggregates)
    evidence = {"metric": "rougeL", "difference": -0.0123, "low": -0.05, "high": 0.02}
    evals_store.add_promotion(
        con, "tiny-lora", "tiny-base", "eval-1", None, evidence | {"p_value": 0.41}, OVERRIDE, "ada"
    )


def card_code(card: str) -> str:
    return re.search(r"```python\n(.*?)\n```", card, re.S).group(1)


def run_card_snippet(card: str, folder, capsys) -> dict:
    """Run the card's "How to use" code as a user would, on the exported folder."""
    namespace = {}
    exec(card_code(card).replace('path = "."', f"path = {str(folder)!r}"), namespace)
    capsys.readouterr()  # its example print
    return namespace


@pytest.mark.slow
def test_exported_folders_load_with_transformers_and_generate_what_the_app_does(
    con, base, adapter, tmp_path, capsys
):
    plant(con, base, adapter)
    settings = GenerationSettings(max_new_tokens=160, batch_size=1)  # the card's greedy settings
    app_summaries = {}
    for model_id in ("tiny-base", "tiny-lora"):
        out = tmp_path / model_id
        done = model_export.export_model(con, model_id, out, ADMIN)
        assert done.folder == out and done.archive is None
        files = {p.name for p in out.iterdir()}
        assert {"model.safetensors", "config.json", "generation_config.json"} <= files
        assert {"tokenizer.json", "chat_template.jinja", "README.md"} <= files
        assert not any(f.startswith("adapter") or f.endswith(".bin") for f in files)
        assert not out.with_name(out.name + ".partial").exists()
        generation = json.loads((out / "generation_config.json").read_text())
        assert generation["do_sample"] is False and generation["max_new_tokens"] == 160

        ref = resolve(con, model_id)
        model, tokenizer = load_model(ref.path, ref.adapter)
        instruction = INSTRUCTION if ref.adapter else model_export.DEFAULT_INSTRUCTION
        expected = [
            r.text for r in summarize_batch(model, tokenizer, DOCUMENTS, settings, instruction)
        ]
        namespace = run_card_snippet((out / "README.md").read_text(), out, capsys)
        assert type(namespace["model"]).__name__ == "LlamaForCausalLM"  # merged, no PEFT
        assert [namespace["summarize"](d) for d in DOCUMENTS] == expected
        assert all(expected) and expected[0] != expected[1]
        app_summaries[model_id] = expected
    assert app_summaries["tiny-lora"] != app_summaries["tiny-base"]  # the adapter was merged
    logged = entries(con, actions=("export_model",))
    assert sorted(logged["target"]) == ["tiny-base", "tiny-lora"]
    assert set(logged["username"]) == {"ada"}


def test_model_card_holds_the_record(con, base, adapter):
    plant(con, base, adapter)
    card = model_export.model_card(con, "tiny-lora")
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert "lora" in meta["tags"] and "tuneloop" in meta["tags"]
    assert "base_model" not in meta  # a local folder has no Hub id to name
    assert "| train | 40 |" in body and "| validation | 5 |" in body and "| test | 7 |" in body
    assert "Prompt version 3" in body and INSTRUCTION in body  # verbatim, in a code block
    assert "| lora_r | 4 |" in body and "| learning_rate | 0.0003 |" in body
    assert "| max_steps | 24 |" in body and "| best_step (result) | 16 |" in body
    assert "| ROUGE-L | 0.4321 | 0.4012 – 0.4633 |" in body
    assert "| ROUGE-2 | 0.2109 | 0.1876 – 0.2345 |" in body
    assert "12.5% (95% CI 0.0% – 37.5%)" in body and "6.2%" in body
    assert "rougeL -0.0123 (95% CI -0.0500 to +0.0200, p = 0.410)" in body
    # The override reason shows as text: no table cell break, HTML or link.
    assert "Reviewers liked it \\| see &lt;b&gt;notes&lt;/b&gt; and \\[link\\](http://x)" in body
    assert "<b>" not in body
    assert model_export.GGUF_HINT.format(folder="<this folder>") in body


def test_card_names_the_hub_base_and_licence_of_the_embedded_model(con, adapter):
    reg_store.register_model(con, DEFAULT_MODEL, "base", "/nowhere/smollm2")
    reg_store.register_model(con, "tuned", "lora", str(adapter), DEFAULT_MODEL, None)
    meta = yaml.safe_load(model_export.model_card(con, "tuned").split("---\n")[1])
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["license"] == "apache-2.0"
    card = model_export.model_card(con, DEFAULT_MODEL)
    assert "Not fine-tuned" in card and "No evaluation of this model" in card


def test_cli_writes_the_folder_and_its_archive_and_pushes(
    home, base, adapter, tmp_path, monkeypatch, capsys
):
    import huggingface_hub

    from engine.__main__ import main

    con = store.connect(db_path())
    plant(con, base, adapter)
    con.close()
    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo, **kw: calls.append(repo))
    monkeypatch.setattr(
        huggingface_hub, "upload_folder", lambda **kw: calls.append(kw) or "https://hub/commit/1"
    )
    out = tmp_path / "export"
    rc = main(["export-model", "tiny-lora", str(out), "--archive", "--push-to-hub", "me/tiny"])
    assert rc == 0, capsys.readouterr().err
    archive = tmp_path / "export.tar.gz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"export/model.safetensors", "export/README.md", "export/tokenizer.json"} <= names
    assert calls[0] == "me/tiny"
    assert calls[1]["repo_id"] == "me/tiny" and calls[1]["folder_path"] == str(out)
    assert "https://hub/commit/1" in capsys.readouterr().out
    con = store.connect(db_path())
    logged = entries(con, actions=("export_model",))
    assert list(logged["target"]) == ["tiny-lora"]
    con.close()
    rc = main(["export-model", "tiny-lora", str(out)])  # the folder is taken now
    assert rc == 1 and "not empty" in capsys.readouterr().err


def test_a_reviewer_cannot_export(con, base, adapter, tmp_path, home):
    plant(con, base, adapter)
    with pytest.raises(PermissionDenied, match="cannot export model"):
        model_export.export_model(con, "tiny-lora", tmp_path / "out", REVIEWER)
    with pytest.raises(PermissionDenied):
        model_export.export_to_data_folder(con, "tiny-lora", REVIEWER)
    assert not (tmp_path / "out").exists()
    assert not (home / "exports").exists() or not any((home / "exports").iterdir())
    assert entries(con, actions=("export_model",)).empty


def test_push_to_hub_errors_say_what_to_do(tmp_path, monkeypatch):
    import httpx2
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="offline"):
        model_export.push_to_hub(tmp_path, "me/tiny")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def unreachable(*args, **kwargs):
        raise httpx2.ConnectError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "create_repo", unreachable)
    with pytest.raises(RuntimeError, match="Could not reach the Hugging Face Hub"):
        model_export.push_to_hub(tmp_path, "me/tiny")


def test_export_button_writes_under_the_data_folder_and_offers_the_archive(home, base, adapter):
    from streamlit.testing.v1 import AppTest

    def page(role):
        import streamlit as st

        import store
        from engine.paths import db_path
        from ui.export import export_ui

        st.session_state["user"] = {"name": "ada", "role": role}
        con = store.connect(db_path())
        try:
            export_ui(con, "tiny-lora")
        finally:
            con.close()

    con = store.connect(db_path())
    plant(con, base, adapter)
    con.close()
    reviewer = AppTest.from_function(page, args=("reviewer",)).run()
    assert not reviewer.exception and not reviewer.button
    app = AppTest.from_function(page, args=("admin",), default_timeout=120).run()
    app.button(key="compare_export_tiny-lora_button").click().run()
    assert not app.exception and not app.error
    archives = list((home / "exports").glob("model-tiny-lora-*.tar.gz"))
    assert len(archives) == 1
    assert (archives[0].with_name(archives[0].name[: -len(".tar.gz")]) / "README.md").exists()
    assert app.get("download_button")[0].proto.label == f"Download {archives[0].name}"


def test_a_model_whose_folder_is_gone_fails_with_a_message_and_leaves_nothing(con, tmp_path):
    reg_store.register_model(con, "gone", "base", str(tmp_path / "deleted-model"))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="Could not load gone"):
        model_export.export_model(con, "gone", out, ADMIN)
    assert not out.exists() and not (tmp_path / "out.partial").exists()
    assert entries(con, actions=("export_model",)).empty
