"""Drafting over a run folder: a model writes a summary draft for each document, batch by batch.
The generation core of two workers: drafting (engine/labelling/worker.py, `python -m engine
draft-worker RUN_DIR`) and evaluation (engine/evaluation/worker.py, which then scores the drafts).

RUN_DIR/config.json is a DraftConfig (model, adapter, instruction and its prompt version,
generation settings), written by engine/labelling/runs.py or `write_run`;
RUN_DIR/documents.jsonl holds {"document_id", "text"} per line. Drafts are appended to
RUN_DIR/drafts.jsonl batch by batch ({"document_id", "summary", "n_generated_tokens",
"truncated", "mean_logprob", "model", "prompt_version"}; mean_logprob: the mean log-probability
of the draft's tokens, how sure the model was, which ranks what to review first) and flushed,
so a cancelled or crashed run keeps what it made, and a restart skips the documents already
drafted. Progress goes to events.jsonl through
jobs.RunWriter. Like every job, it never opens the database: the app writes the inputs and
ingests drafts.jsonl.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.jobs.runfolder import RunWriter, write_json
from engine.models import generation
from engine.models.generation import GenerationSettings
from engine.models.prompts import DEFAULT_INSTRUCTION

DRAFTS = "drafts.jsonl"


@dataclass
class DraftConfig:
    model: str  # model folder, Hub id, or "smollm2-135m-instruct" for the embedded default
    adapter: str | None = None  # LoRA adapter folder applied on top of `model`
    model_id: str = ""  # name stored with each draft (the app's models.id); default: model
    instruction: str = DEFAULT_INSTRUCTION  # the prompt instruction, from prompt_versions
    prompt_version: int = 1  # prompt_versions.version the instruction belongs to
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    n_documents: int | None = None  # lines the app exported to documents.jsonl, to check it

    def __post_init__(self):
        if isinstance(self.generation, dict):
            self.generation = GenerationSettings(**self.generation)
        if not self.model:
            raise ValueError("config.json names no model: set 'model' to a folder or Hub id.")
        if not self.instruction.strip():
            raise ValueError("The instruction is empty: write what the model should do.")
        self.model_id = self.model_id or self.model

    def to_dict(self) -> dict:
        return asdict(self)


def write_run(run_dir: str | Path, config: DraftConfig, documents: list[dict]) -> Path:
    """Create a drafting run folder: config.json and documents.jsonl ({"document_id", "text"})."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "documents.jsonl", "w", encoding="utf-8") as f:
        for d in documents:
            f.write(json.dumps({"document_id": d["document_id"], "text": d["text"]}) + "\n")
    write_json(run_dir / "config.json", config.to_dict() | {"n_documents": len(documents)})
    return run_dir


def read_config(run_dir: Path) -> DraftConfig:
    path = run_dir / "config.json"
    try:
        return DraftConfig(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: create the run with drafting.write_run.") from None
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{path} is not a valid drafting config: {e}") from None


def read_documents(run_dir: Path) -> list[dict]:
    """The documents to draft, checked: each line has a unique document_id and a text."""
    path = run_dir / "documents.jsonl"
    if not path.exists():
        raise ValueError(f"{path} is missing: export the documents to draft first.")
    documents, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            doc_id, text = row["document_id"], row["text"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(
                f"{path} line {n} is not a JSON object with document_id and text."
            ) from None
        if doc_id in seen:
            raise ValueError(f"{path} line {n}: document_id {doc_id!r} appears twice.")
        seen.add(doc_id)
        documents.append({"document_id": doc_id, "text": str(text)})
    return documents


def drafted_ids(run_dir: Path) -> set:
    """document_ids already in drafts.jsonl. A half-written last line (the worker was killed
    while writing) is cut off, so appending continues on a clean line."""
    path = run_dir / DRAFTS
    if not path.exists():
        return set()
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    return {json.loads(line)["document_id"] for line in data[:end].splitlines() if line.strip()}


def append_drafts(run_dir: Path, rows: list[dict]):
    with open(run_dir / DRAFTS, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())


class _Meter:
    """Progress of a drafting run as people read it: documents done, the token step inside the
    current batch, and an ETA that is an upper bound (every document is assumed to run to
    max_new_tokens until a batch has finished; documents go longest first, so later batches
    are faster than the first ones). Also where a cancel is noticed between two tokens."""

    EVERY_S = 2.0

    def __init__(self, writer: RunWriter, total: int, done: int, settings: GenerationSettings):
        self.writer, self.total, self.done = writer, total, done
        self.max_new, self.batch_size = settings.max_new_tokens, settings.batch_size
        self.drafted, self.started = 0, time.time()
        self.batch_t0 = self.last = 0.0
        self.remaining = 0

    def batch_started(self, remaining: int):
        self.batch_t0, self.remaining = time.time(), remaining

    def step(self, step: int) -> bool:
        """Called after each generated token: report now and then; True stops generation (a
        cancel, checked at every token: a stat costs microseconds, a token milliseconds)."""
        now = time.time()
        if now - self.last < self.EVERY_S:
            return self.writer.cancel_requested()
        self.last = now
        per_step = (now - self.batch_t0) / step
        if self.drafted:  # seconds per document so far, for the documents left
            eta = (now - self.started) / self.drafted * self.remaining - (now - self.batch_t0)
        else:  # this batch to the token limit, then the same for every batch left
            batches_left = -(-self.remaining // self.batch_size) - 1
            eta = per_step * (self.max_new - step) + per_step * self.max_new * batches_left
        self.writer.progress(
            "generating",
            self.done,
            self.total,
            eta,
            step=step,
            max_new_tokens=self.max_new,
        )
        return self.writer.cancel_requested()

    def batch_done(self, n: int, tokens: int, truncated: int):
        self.drafted += n
        self.done += n
        self.remaining -= n
        seconds = time.time() - self.started
        eta = seconds / self.drafted * self.remaining if self.remaining else 0.0
        self.writer.progress(
            "generating",
            self.done,
            self.total,
            eta,
            truncated=truncated,
            docs_per_s=round(self.drafted / seconds, 3),
            tokens_per_s=round(tokens / seconds, 1),
        )


def run_drafting(run_dir: str | Path, final: bool = True) -> str:
    """Draft every document of the run not drafted yet; returns the final state
    (succeeded or cancelled). Raises ValueError for bad inputs. With final=False a success
    leaves the status "running", for a job that goes on (evaluation scores the drafts)."""
    run_dir = Path(run_dir)
    writer = RunWriter(run_dir)
    writer.set_status("running", pid=os.getpid())
    config = read_config(run_dir)
    documents = read_documents(run_dir)
    if config.n_documents is not None and config.n_documents != len(documents):
        raise ValueError(
            f"documents.jsonl holds {len(documents)} documents, not the {config.n_documents} "
            "exported: the export was interrupted. Start a new drafting run."
        )
    done = drafted_ids(run_dir)
    # Longest first: similar lengths share a batch (little padding), and a batch that does not
    # fit in memory fails at the start, not after an hour.
    todo = sorted(
        (d for d in documents if d["document_id"] not in done), key=lambda d: -len(d["text"])
    )
    writer.event("start", total=len(documents), already_drafted=len(documents) - len(todo))
    if not todo:
        if final:
            writer.set_status("succeeded", "Every document already had a draft.")
        return "succeeded"
    writer.progress("loading model", len(documents) - len(todo), len(documents))
    started = time.time()
    model, tokenizer = generation.load_model(config.model, config.adapter)
    writer.event("model_loaded", model=config.model_id, seconds=round(time.time() - started, 1))

    settings = config.generation
    meter = _Meter(writer, len(documents), len(documents) - len(todo), settings)
    drafted, tokens, truncated = 0, 0, 0
    for start in range(0, len(todo), settings.batch_size):
        if writer.cancel_requested():
            break
        batch = todo[start : start + settings.batch_size]
        meter.batch_started(len(todo) - start)
        try:
            results = generation.summarize_batch(
                model,
                tokenizer,
                [d["text"] for d in batch],
                settings,
                config.instruction,
                on_step=meter.step,
            )
        except generation.GenerationStopped:  # cancelled mid-batch: its drafts are incomplete
            break
        append_drafts(
            run_dir,
            [
                {
                    "document_id": d["document_id"],
                    "summary": r.text,
                    "n_generated_tokens": r.n_generated_tokens,
                    "truncated": r.truncated,
                    "mean_logprob": r.mean_logprob,
                    "model": config.model_id,
                    "prompt_version": config.prompt_version,
                }
                for d, r in zip(batch, results)
            ],
        )
        drafted += len(batch)
        tokens += sum(r.n_generated_tokens for r in results)
        truncated += sum(r.truncated for r in results)
        meter.batch_done(len(batch), tokens, truncated)
    # The request is honoured: remove it so that resuming this folder does not stop at once.
    (run_dir / "cancel").unlink(missing_ok=True)
    note = f"; {truncated} documents were cut to fit the model's context" if truncated else ""
    if drafted < len(todo):
        done = len(documents) - len(todo) + drafted
        writer.set_status("cancelled", f"Cancelled: {done} of {len(documents)} drafted{note}.")
        return "cancelled"
    if final:
        writer.set_status("succeeded", f"Drafted {drafted} documents{note}.")
    return "succeeded"
