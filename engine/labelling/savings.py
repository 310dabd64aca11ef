"""Time and effort saved, per model version: what reviewing its drafts cost.

Every review decision records the seconds from opening the draft to the decision and the word
edit distance between the model's text and the saved one (`word_edit_distance`: word-level
Levenshtein over the longer length, 0 = accepted unchanged, 1 = every word replaced). Per model
that wrote drafts, `savings_table` gives the share of decisions that kept the draft unchanged
(an "unusable" counts as not kept), the median edit distance of the saved drafts, the median
seconds per decision, and each one's change against the model it was fine-tuned from with a
seeded two-sample bootstrap 95% CI (different documents, so not paired: engine/stats.py
`difference_ci`). `model_history` adds each version's newest evaluation scores, for the Loop
page.

    python -m engine savings        (prints the table; "no reviews yet" on a fresh store)
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from engine.stats import difference_ci
from store import evals as evals_store
from store import labelling as label_store
from store import registry as reg_store
from store import runs as runs_store

# (column, what it measures, statistic, only saved drafts) in the order shown.
MEASURES = (
    ("unchanged", "share accepted unchanged", np.mean, False),
    ("edit", "median edit distance", np.median, True),
    ("seconds", "median seconds per review", np.median, False),
)


def word_edit_distance(before: str, after: str) -> float:
    """Word-level Levenshtein distance between two texts, divided by the longer one's number of
    words (0.0: the same words in the same order; two empty texts are the same)."""
    a, b = before.split(), after.split()
    if not a and not b:
        return 0.0
    previous = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
            )
        previous = current
    return previous[-1] / max(len(a), len(b))


def base_of(con, model_id: str) -> str | None:
    """The model a fine-tune started from (a LoRA adapter's base, or the base named in a full
    fine-tune's training config); None for a base model."""
    model = reg_store.get_model(con, model_id)
    if model is None:
        return None
    if isinstance(model.get("base_id"), str):
        return model["base_id"]
    run = runs_store.get_run(con, model["run_id"]) if isinstance(model["run_id"], str) else None
    return json.loads(run["config"]).get("base_model_id") if run else None


def decisions(con) -> pd.DataFrame:
    """Review decisions on drafts: model_id, action, seconds, edit (edit distance; NaN for an
    unusable draft) and unchanged (1.0 or 0.0)."""
    rows = label_store.review_effort(con)
    saved = rows["action"] == "saved"
    edit = pd.to_numeric(rows["edit_distance"], errors="coerce").astype(float)
    for i in rows.index[saved & edit.isna()]:  # decided before distances were recorded
        edited = rows.at[i, "edited_summary"]
        edit[i] = 0.0 if pd.isna(edited) else word_edit_distance(rows.at[i, "draft"], edited)
    rows["edit"] = edit.where(saved)
    rows["unchanged"] = (saved & (rows["edit"] == 0)).astype(float)
    rows["seconds"] = pd.to_numeric(rows["seconds"], errors="coerce").astype(float)
    return rows


def _values(rows: pd.DataFrame, column: str, saved_only: bool) -> np.ndarray:
    if saved_only:
        rows = rows[rows["action"] == "saved"]
    return rows[column].dropna().to_numpy(dtype=float)


def savings_table(con, models: list[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per model with reviewed drafts (or per model in `models` that has some): model,
    base, reviews, unchanged, edit, seconds and, for each measure, <measure>_delta, _low, _high
    (this model minus its base; NaN when the base has no reviewed drafts)."""
    rows = decisions(con)
    columns = ["model", "base", "reviews"] + [
        f"{name}{suffix}" for name, *_ in MEASURES for suffix in ("", "_delta", "_low", "_high")
    ]
    out = []
    for model_id, mine in rows.groupby("model_id", sort=True):
        if models is not None and model_id not in models:
            continue
        base = base_of(con, model_id)
        theirs = rows[rows["model_id"] == base]
        entry = {"model": model_id, "base": base, "reviews": len(mine)}
        for name, _, statistic, saved_only in MEASURES:
            values = _values(mine, name, saved_only)
            entry[name] = float(statistic(values)) if values.size else float("nan")
            ci = difference_ci(values, _values(theirs, name, saved_only), statistic, seed=seed)
            entry |= {f"{name}_delta": ci.mean, f"{name}_low": ci.low, f"{name}_high": ci.high}
        out.append(entry)
    return pd.DataFrame(out, columns=columns)


def _cell(value: float, digits: int, signed: bool = False) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The savings table as people read it: one text column per measure, with the change
    against the base model and its 95% CI."""
    shown = pd.DataFrame({"model": table["model"], "base": table["base"].fillna("—")})
    shown["reviews"] = table["reviews"]
    for name, label, _, _ in MEASURES:
        digits = 1 if name == "seconds" else 2
        shown[label] = [_cell(v, digits) for v in table[name]]
        shown[f"{label} vs base (95% CI)"] = [
            "—"
            if d != d
            else f"{_cell(d, digits, True)} [{_cell(lo, digits, True)}, {_cell(hi, digits, True)}]"
            for d, lo, hi in table[[f"{name}_delta", f"{name}_low", f"{name}_high"]].values
        ]
    return shown


def model_history(con) -> pd.DataFrame:
    """Each registered model: kind, base, when it was registered, whether it is in production,
    its newest succeeded evaluation (dataset, documents, ROUGE-2, ROUGE-L, unsupported-fact
    rate) and its review savings."""
    from engine.models.registry import production_model

    models = reg_store.list_models(con)
    evaluations = evals_store.list_evaluations(con)
    evaluations = evaluations[evaluations["state"] == "succeeded"]
    production = production_model(con)
    savings = savings_table(con).set_index("model")
    rows = []
    for m in models.itertuples():
        row = {
            "model": m.id,
            "kind": m.kind,
            "base": base_of(con, m.id),
            "registered": m.created_at,
            "production": m.id == production,
        }
        newest = evaluations[evaluations["model_id"] == m.id].head(1)
        scores = json.loads(newest["aggregates"].iloc[0] or "{}") if len(newest) else {}
        row["dataset"] = int(newest["dataset_id"].iloc[0]) if len(newest) else None
        row["test documents"] = scores.get("n_documents")
        for key, label in (("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"),
                           ("has_unsupported", "unsupported-fact rate")):  # fmt: skip
            row[label] = scores.get(key, {}).get("mean")
        for name, label, _, _ in MEASURES:
            row[label] = savings[name].get(m.id) if m.id in savings.index else None
        rows.append(row)
    return pd.DataFrame(rows)
