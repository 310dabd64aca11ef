"""Export a registered model in the standard Hugging Face form, with a model card.

    python -m engine export-model MODEL OUT [--archive] [--push-to-hub OWNER/NAME]

OUT gets safetensors weights (a LoRA adapter merged into its base; base models and full
fine-tunes as they are), the tokenizer with its chat template, `generation_config.json` (greedy,
the evaluation's token budget: the settings the card's scores were measured with) and README.md,
a model card in the Hub's format: base model, dataset version, prompt, training settings,
evaluation scores with 95% CIs, promotions and limitations. `AutoModelForCausalLM` and
`AutoTokenizer.from_pretrained(OUT)` load it; `--archive` also writes OUT.tar.gz. Admins only.
GGUF (llama.cpp, Ollama) is one command away with llama.cpp's converter (`GGUF_HINT`): no
installable package writes GGUF from a Hugging Face model without clashing with our pinned
`gguf` reader.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from engine.audit import record
from engine.auth import CONSOLE, check
from engine.errors import TuneloopError
from engine.evaluation.comparison import METRICS
from engine.evaluation.runs import EVAL_SETTINGS
from engine.models.embedded import DEFAULT_MODEL
from engine.models.generation import resolve_model, stop_ids
from engine.models.prompts import DEFAULT_INSTRUCTION
from engine.models.registry import production_model, resolve
from engine.paths import exports_dir, safe_file_name
from store import evals as evals_store
from store import registry as reg_store
from store import runs as runs_store
from store import splits as splits_store

# Hub id and licence of the embedded default model (the converted folder has neither).
KNOWN_BASES = {DEFAULT_MODEL: ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")}
GGUF_HINT = "python convert_hf_to_gguf.py {folder} --outfile model.gguf --outtype q8_0"
# Training settings the card lists, in this order (the run's config holds more).
CARD_SETTINGS = (
    "method", "learning_rate", "lr_scheduler", "warmup_ratio", "epochs", "max_steps",
    "batch_size", "grad_accum", "max_length", "weight_decay", "lora_r", "lora_alpha",
    "lora_dropout", "lora_target_modules", "seed", "train_subset", "packing", "bf16",
)  # fmt: skip
TRAINED = ("steps", "best_step", "base_eval_loss", "best_eval_loss", "train_tokens")
TRAINED += ("train_seconds", "overfitting")


@dataclass
class Export:
    model_id: str
    folder: Path  # the exported model folder
    archive: Path | None  # OUT.tar.gz when asked for


def export_model(con, model_id: str, out, user: dict | None = CONSOLE, archive=False) -> Export:
    """Write `model_id` to the new folder `out` (see the module docstring); admins only."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    from engine.models.embedded import open_tokenizer

    check(user, "export_model")
    ref = resolve(con, model_id)
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TuneloopError(f"{out} already exists and is not empty: name a new folder.")
    card = model_card(con, model_id)  # before the slow part: a broken record fails fast
    source = resolve_model(ref.path)
    try:  # the checkpoint's own dtype; the merge is what engine/models/generation.py does
        model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
        if ref.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, ref.adapter).merge_and_unload()
        # The tokenizer generation uses: the base's for an adapter.
        tokenizer = open_tokenizer(source)
    except OSError as e:  # a folder gone, or a Hub id while offline
        raise TuneloopError(f"Could not load {model_id} from {ref.adapter or source}: {e}") from e
    if not tokenizer.chat_template:
        raise TuneloopError(f"{model_id}'s tokenizer has no chat template: it cannot be prompted.")
    tokenizer.padding_side = "left"  # for batched generation, as the app generates
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config = GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=stop_ids(model, tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=EVAL_SETTINGS.max_new_tokens,
    )
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:  # written whole, then renamed: a failed export leaves nothing that looks finished
        model.save_pretrained(partial)  # transformers 5 writes safetensors only
        tokenizer.save_pretrained(partial)
        (partial / "README.md").write_text(card, encoding="utf-8")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()  # empty, checked above
    partial.rename(out)
    packed = write_archive(out, out.with_name(out.name + ".tar.gz")) if archive else None
    record(con, user, "export_model", model_id, folder=str(out), archive=str(packed or ""))
    return Export(model_id, out, packed)


def export_to_data_folder(con, model_id: str, user: dict | None) -> Export:
    """Export with an archive under `<data folder>/exports/`, named by model and time (the web
    app's button)."""
    check(user, "export_model")
    name = f"model-{safe_file_name(model_id)}-{time.strftime('%Y%m%d-%H%M%S')}"
    return export_model(con, model_id, exports_dir() / name, user, archive=True)


def write_archive(folder: Path, target: Path) -> Path:
    """`target`, a .tar.gz holding `folder` under its own name (written whole, then renamed)."""
    partial = target.with_name(target.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return partial.rename(target)


def push_to_hub(folder, repo_id: str, private: bool = True) -> str:
    """Upload an exported folder to the Hub repo `repo_id` (created private when missing); the
    token comes from `hf auth login` or HF_TOKEN. Returns the commit's URL."""
    import httpx2  # huggingface_hub's HTTP client: its network errors
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    if huggingface_hub.constants.is_offline_mode():
        raise RuntimeError("Hugging Face Hub offline mode is on (HF_HUB_OFFLINE): cannot push.")
    try:
        huggingface_hub.create_repo(repo_id, private=private, exist_ok=True)
        commit = huggingface_hub.upload_folder(
            repo_id=repo_id, folder_path=str(folder), commit_message="Export from Tuneloop"
        )
    except (ConnectionError, httpx2.TransportError) as e:
        raise RuntimeError(f"Could not reach the Hugging Face Hub ({e}): are you online?") from e
    except LocalTokenNotFoundError as e:
        raise RuntimeError("Log in first (`hf auth login`) or set HF_TOKEN.") from e
    except HfHubHTTPError as e:
        raise RuntimeError(f"The Hub refused the upload to {repo_id}: {e}") from e
    return str(getattr(commit, "commit_url", commit))


# --- the model card ---------------------------------------------------------------------------


def model_card(con, model_id: str) -> str:
    """README.md for an exported model: YAML front matter, then what it is, what it learnt from,
    how it scored and how to use it."""
    model = reg_store.get_model(con, model_id)
    run = runs_store.get_run(con, model["run_id"]) if _text(model["run_id"]) else None
    config = json.loads(run["config"]) if run else {}
    base_id = model["base_id"] if model["kind"] == "lora" else config.get("base_model_id")
    base_id = _text(base_id) or model_id
    hub_id, licence = _hub_base(con, base_id)
    if run:
        version, instruction = config.get("prompt_version"), config.get("instruction")
    else:
        version, instruction = reg_store.current_prompt(con) or (None, DEFAULT_INSTRUCTION)
    method = {"lora": "LoRA fine-tune (merged)", "full": "full fine-tune"}.get(model["kind"])
    front = {"base_model": hub_id, "library_name": "transformers", "license": licence}
    tags = ["tuneloop", "summarization", {"lora": "lora", "full": "fine-tuned"}.get(model["kind"])]
    lines = ["---", *_yaml(front, tags), "---", "", f"# {_md(model_id)}", ""]
    lines += [f"A document summarization model exported by Tuneloop: {method or 'a base model'}."]
    if production_model(con) == model_id:
        lines[-1] += " It was the production model when exported."
    lines += ["", "## Base model", ""]
    where = f"[{hub_id}](https://huggingface.co/{hub_id})" if hub_id else f"**{_md(base_id)}**"
    lines += [f"{where}{'' if hub_id else ', a local model folder registered in Tuneloop'}; "]
    lines[-1] += "the LoRA adapter is merged into its weights." if model["kind"] == "lora" else ""
    lines[-1] += "every weight was trained." if model["kind"] == "full" else ""
    lines[-1] += "not fine-tuned." if not method else ""
    lines += _data_section(con, config.get("dataset_version"))
    lines += ["", "## Prompt", ""]
    lines += [
        (f"Prompt version {version}" if version else "The default prompt")
        + ": the instruction, then the document:",
        "",
    ]
    lines += _fenced(f"{instruction}\n\nDocument:\n<the document>", "text")
    if run:
        lines += _training_section(con, run, config)
    lines += _evaluation_section(con, model_id)
    lines += _promotion_section(con, model_id)
    lines += _usage_section(instruction)
    lines += _limitations_section(con, model_id)
    return "\n".join(lines) + "\n"


def _hub_base(con, base_id: str) -> tuple[str | None, str | None]:
    """(Hub id, licence) of a base model, where known; a local folder has no Hub id."""
    if base_id in KNOWN_BASES:
        return KNOWN_BASES[base_id]
    base = reg_store.get_model(con, base_id)
    path = base["path"] if base else ""
    return (path if path.count("/") == 1 and not Path(path).exists() else None), None


def _data_section(con, dataset_id) -> list[str]:
    lines = ["", "## Training data", ""]
    counts = splits_store.dataset_counts(con, int(dataset_id)) if dataset_id else None
    if not counts:
        return lines + ["Not fine-tuned by Tuneloop: no training data recorded."]
    lines += [f"Tuneloop dataset version {dataset_id}, frozen from accepted examples and split"]
    lines[-1] += " by duplicate cluster (no near duplicate of a test document was trained on)."
    lines += ["", "| split | examples |", "|---|---|"]
    lines += [f"| {s} | {n:,} |" for s, n in zip(("train", "validation", "test"), counts)]
    return lines


def _training_section(con, run: dict, config: dict) -> list[str]:
    lines = ["", "## Training", ""]
    lines += [
        f"Run `{run['id']}` by {_md(_text(run['created_by']) or '—')}, {run['created_at']:%Y-%m-%d}"
    ]
    lines[-1] += " (TRL supervised fine-tuning, loss on the summary only)."
    lines += ["", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {_md(_value(config[k]))} |" for k in CARD_SETTINGS if k in config]
    finished = runs_store.latest_event(con, run["id"], "finished") or {}
    done = finished.get("metrics") or {}
    lines += [f"| {k} (result) | {_md(_value(done[k]))} |" for k in TRAINED if k in done]
    return lines


def _evaluations(con, model_id: str) -> list[tuple[dict, dict]]:
    table = evals_store.list_evaluations(con)
    table = table[(table["model_id"] == model_id) & (table["state"] == "succeeded")]
    rows = [row for _, row in table.iterrows() if _text(row["aggregates"])]
    return [(row, json.loads(row["aggregates"])) for row in rows]


def _evaluation_section(con, model_id: str) -> list[str]:
    lines = ["", "## Evaluation", ""]
    found = _evaluations(con, model_id)
    if not found:
        return lines + ["No evaluation of this model in Tuneloop yet."]
    lines += ["Held-out test split, summaries scored against the references; mean and bootstrap"]
    lines[-1] += " 95% confidence interval."
    for row, scores in found:
        generation = json.loads(row["generation"])
        lines += ["", f"### Evaluation `{row['run_id']}`", ""]
        lines += [f"Dataset version {row['dataset_id']} test split, {scores.get('n_documents')} "]
        lines[-1] += f"documents, prompt version {row['prompt_version']}, "
        greedy = "greedy" if not generation.get("temperature") else "sampled"
        lines[-1] += f"{greedy}, up to {generation.get('max_new_tokens')} new tokens."
        lines += ["", "| metric | mean | 95% CI |", "|---|---|---|"]
        for key, label, _ in METRICS:
            if isinstance(scores.get(key), dict):
                s = scores[key]
                lines += [f"| {label} | {s['mean']:.4f} | {s['low']:.4f} – {s['high']:.4f} |"]
    return lines


def _promotion_section(con, model_id: str) -> list[str]:
    promotions = evals_store.list_promotions(con)
    promotions = promotions[promotions["model_id"] == model_id]
    lines = ["", "## Promotion", ""]
    if promotions.empty:
        return lines + ["Never promoted to production in Tuneloop."]
    lines += ["| when | by | replaced | evidence | override reason |", "|---|---|---|---|---|"]
    for _, p in promotions.iterrows():
        e = json.loads(p["evidence"]) if _text(p["evidence"]) else None
        evidence = "none" if not e else f"{e['metric']} {e['difference']:+.4f} "
        if e:
            evidence += f"(95% CI {e['low']:+.4f} to {e['high']:+.4f}, p = {e['p_value']:.3f})"
        cells = (f"{p['created_at']:%Y-%m-%d %H:%M}", p["promoted_by"], p["previous_model_id"])
        cells += (evidence, p["override_reason"])
        lines += ["| " + " | ".join(_md(_text(c) or "—") for c in cells) + " |"]
    return lines


def _usage_section(instruction: str) -> list[str]:
    code = f"""from transformers import AutoModelForCausalLM, AutoTokenizer

path = "."  # this folder, or the Hub repo it was pushed to
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path)
INSTRUCTION = {instruction!r}


def summarize(document: str) -> str:
    messages = [{{"role": "user", "content": f"{{INSTRUCTION}}\\n\\nDocument:\\n{{document}}"}}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = model.generate(**inputs)  # greedy, generation_config.json
    answer = output[0, inputs["input_ids"].shape[1] :]
    return tokenizer.decode(answer, skip_special_tokens=True).strip()


print(summarize("Paste a document here."))"""
    lines = ["", "## How to use", "", "With transformers (the prompt the model was trained and"]
    lines[-1] += " evaluated with; greedy decoding, as evaluated):"
    lines += ["", *_fenced(code, "python"), "", "### GGUF (llama.cpp, Ollama)", ""]
    lines += ["With a llama.cpp checkout (`pip install -r requirements.txt` in it), from the"]
    lines[-1] += " folder above this one:"
    return lines + ["", *_fenced(GGUF_HINT.format(folder="<this folder>"), "bash")]


def _limitations_section(con, model_id: str) -> list[str]:
    lines = ["", "## Limitations", ""]
    lines += ["- A summary can state facts that the document does not contain. Tuneloop counts"]
    lines[-1] += " numbers, dates, amounts and names in each summary that are missing from the"
    lines[-1] += " document (names also catch a summary's own conventions, so read the"
    lines[-1] += " numbers/dates rate as the stricter signal)."
    found = _evaluations(con, model_id)
    if found:
        row, scores = found[0]
        for key, label in (("has_unsupported", "all facts"), ("has_unsupported_numbers", "")):
            if isinstance(scores.get(key), dict):
                s, what = scores[key], label or "numbers, dates and amounts"
                lines += [f"- Summaries with unsupported facts ({what}): {s['mean']:.1%} (95% CI "]
                lines[-1] += f"{s['low']:.1%} – {s['high']:.1%}), evaluation `{row['run_id']}`."
    else:
        lines += ["- Not evaluated: its rate of unsupported facts is unknown."]
    lines += ["- Scores hold for documents like the training data; check others before use."]
    lines += ["- Documents longer than the context window must be cut; the summary then covers"]
    lines[-1] += " only the part the model saw."
    return lines


def _yaml(front: dict, tags: list) -> list[str]:
    """YAML lines for the front matter: strings as JSON strings (valid YAML double-quoted
    scalars), empty values left out."""
    lines = [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in front.items() if v]
    lines += ['pipeline_tag: "text-generation"', "tags:"]
    return lines + [f"- {json.dumps(t, ensure_ascii=False)}" for t in tags if t]


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def _md(text) -> str:
    """Text from people shown as text in Markdown, mid-line: one line, the characters that
    format escaped (emphasis, code, links, table cells), no HTML."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _fenced(text: str, language: str) -> list[str]:
    """A fenced code block longer than any backtick run inside, so the text cannot close it."""
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return [f"{fence}{language}", text, fence]


def _text(value) -> str | None:
    """A stored text value, None for SQL NULL (pandas gives NaN or None)."""
    return value if isinstance(value, str) and value else None


def _value(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


# --- command line -----------------------------------------------------------------------------


def add_commands(subparsers):
    """The `export-model` subcommand of `python -m engine`."""
    p = subparsers.add_parser("export-model", help="write a model as merged safetensors + card")
    p.add_argument("model", help="a registered model id")
    p.add_argument("out", help="a new (or empty) folder to write")
    p.add_argument("--archive", action="store_true", help="also write OUT.tar.gz")
    p.add_argument("--push-to-hub", metavar="OWNER/NAME", help="upload the folder (online)")
    p.add_argument("--public", action="store_true", help="create the Hub repo public")
    p.set_defaults(run=main)


def main(con, args):
    """Run `export-model` as the console user (the machine's owner)."""
    done = export_model(con, args.model, args.out, CONSOLE, archive=args.archive)
    print(f"{done.model_id} exported to {done.folder}")
    if done.archive:
        print(f"Archive: {done.archive}")
    if args.push_to_hub:
        print(f"Pushed: {push_to_hub(done.folder, args.push_to_hub, not args.public)}")
    print("GGUF, with llama.cpp: " + GGUF_HINT.format(folder=done.folder))
