"""The evaluation job: summarize a held-out test set with one model and score every summary
against its reference.

    python -m engine eval-worker RUN_DIR

RUN_DIR is a drafting run folder (engine/models/drafting.py: config.json with the model, the
prompt instruction and greedy generation settings; documents.jsonl) plus references.jsonl
({"document_id", "reference"} per line). Generation is the drafting worker's (batched, resumable,
cancellable, drafts.jsonl); then each document is scored (`score`) into scores.jsonl and the
aggregates with bootstrap 95% confidence intervals (`aggregate`) go to summary.json. Like every
job it never opens the database.

Per document: ROUGE-1/2/L/Lsum F1 (rouge-score, stemmed), semantic similarity to the reference
(all-MiniLM-L6-v2 cosine), summary and reference lengths in words, compression (document words /
summary words), novel bigram ratio, and the unsupported facts (numbers, dates, money, names in
the summary that the document does not contain): engine/metrics.py. Two models scored on the
same documents compare with `compare` (a paired bootstrap, engine/stats.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine import metrics, stats
from engine.jobs.runfolder import RunWriter, write_json
from engine.jobs.workers import run_job, worker_main
from engine.models.drafting import DRAFTS, read_config, read_documents, run_drafting, write_run

SCORES = (
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "similarity",
    "summary_words",
    "compression",
    "novel_bigrams",
    "unsupported_facts",
    "has_unsupported",
    "has_unsupported_numbers",
    "cut_off",
)


def score(
    documents: list[str],
    references: list[str],
    summaries: list[str],
    embed=None,
    cut_off: list[bool] | None = None,
):
    """One dict of scores per document; similarity is None without an embedder. cut_off marks
    summaries whose generation stopped at the token limit (their last word may be cut)."""
    rouge = metrics.rouge(summaries, references)
    similarity = (
        metrics.semantic_similarity(summaries, references, embed)
        if embed
        else [None] * len(summaries)
    )
    rows = []
    for i, (document, reference, summary) in enumerate(zip(documents, references, summaries)):
        words = len(summary.split())
        stopped = bool(cut_off and cut_off[i])
        unsupported = metrics.unsupported_facts(summary, document, cut_off=stopped)
        rows.append(
            {t: round(float(rouge[t][i]), 4) for t in metrics.ROUGE_TYPES}
            | {
                "similarity": None if similarity[i] is None else round(float(similarity[i]), 4),
                "summary_words": words,
                "reference_words": len(reference.split()),
                "compression": round(len(document.split()) / max(words, 1), 2),
                "novel_bigrams": round(metrics.novel_ngram_ratio(summary, document), 4),
                **metrics.fact_counts(unsupported),
                "unsupported": unsupported,
                "cut_off": int(stopped),
            }
        )
    return rows


def aggregate(rows: list[dict], seed: int = 0) -> dict:
    """Mean and bootstrap 95% CI of every score over the documents (has_unsupported's mean is
    the unsupported-fact rate: the share of summaries with at least one; has_unsupported_numbers
    the same for numbers, dates and amounts)."""
    out = {"n_documents": len(rows)}
    for name in SCORES:
        values = [r[name] for r in rows if r.get(name) is not None]
        if values:
            interval = stats.bootstrap_ci(values, seed=seed)
            out[name] = {"mean": interval.mean, "low": interval.low, "high": interval.high}
    return out


def compare(rows_a: list[dict], rows_b: list[dict], name: str, seed: int = 0) -> dict:
    """B minus A on the same documents (in the same order) for one score: mean difference, its
    95% CI and a two-sided p-value."""
    if len(rows_a) != len(rows_b):
        raise ValueError("Compare two evaluations of the same documents.")
    diff, p = stats.paired_bootstrap(
        [r[name] for r in rows_a], [r[name] for r in rows_b], seed=seed
    )
    return {"mean": diff.mean, "low": diff.low, "high": diff.high, "p_value": p}


def write_eval_run(run_dir: str | Path, config, rows: list[dict]) -> Path:
    """Create an evaluation run folder from a DraftConfig and rows of {"document_id", "text",
    "reference"}: the drafting inputs plus references.jsonl."""
    run_dir = write_run(run_dir, config, rows)
    with open(run_dir / "references.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            row = {"document_id": r["document_id"], "reference": r["reference"]}
            f.write(json.dumps(row) + "\n")
    return run_dir


def read_scores(run_dir: str | Path) -> list[dict]:
    """The per-document rows a finished evaluation wrote (scores.jsonl), in document order."""
    path = Path(run_dir) / "scores.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def read_references(run_dir: Path) -> dict:
    path = run_dir / "references.jsonl"
    if not path.exists():
        raise ValueError(f"{path} is missing: an evaluation needs the reference summaries.")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {r["document_id"]: r["reference"] for r in rows}


def run_evaluation(run_dir: str | Path, semantic: bool = True) -> str:
    """Generate (resuming what is there), then score; returns the final state."""
    from engine.data.similarity import default_embedder

    run_dir = Path(run_dir)
    references = read_references(run_dir)
    documents = read_documents(run_dir)
    missing = [d["document_id"] for d in documents if d["document_id"] not in references]
    if missing:
        raise ValueError(f"{len(missing)} documents have no reference, e.g. {missing[0]}.")
    state = run_drafting(run_dir, final=False)
    if state != "succeeded":
        return state
    writer = RunWriter(run_dir)
    writer.progress("scoring", 0, len(documents))
    drafts = {}
    for line in (run_dir / DRAFTS).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            drafts[row["document_id"]] = row
    ids = [d["document_id"] for d in documents]
    limit = read_config(run_dir).generation.max_new_tokens
    rows = score(
        [d["text"] for d in documents],
        [references[i] for i in ids],
        [drafts[i]["summary"] for i in ids],
        default_embedder() if semantic else None,
        cut_off=[drafts[i]["n_generated_tokens"] >= limit for i in ids],
    )
    with open(run_dir / "scores.jsonl", "w", encoding="utf-8") as f:
        for i, row in zip(ids, rows):
            f.write(json.dumps({"document_id": i, "summary": drafts[i]["summary"]} | row) + "\n")
    summary = aggregate(rows)
    write_json(run_dir / "summary.json", summary)
    writer.event("scored", **{k: v["mean"] for k, v in summary.items() if isinstance(v, dict)})
    writer.set_status("succeeded", None, summary=summary)
    return "succeeded"


def main(argv: list[str]) -> int:
    return worker_main(
        argv,
        "python -m engine eval-worker",
        "Summarize and score a test set.",
        lambda args: run_job(
            args.run_dir,
            lambda: run_evaluation(args.run_dir, semantic=not args.no_semantic),
            "evaluation",
        ),
        lambda parser: parser.add_argument(
            "--no-semantic", action="store_true", help="skip embedding similarity"
        ),
    )
