"""Compare two evaluations on the documents both scored (paired bootstrap CIs, a clear winner only
when the interval excludes zero) and promote a model: it becomes the production model (what
drafting, chat and serving use by default) only when it beats the current one on the same test
documents, or with a recorded reason for overriding that rule. Publishing it to a running API
server is the promotion's follow-up (engine/followups.py `promote_and_publish`).

Run: python -m engine compare --models A B [--report r.html]; python -m engine promote MODEL
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd

from engine import stats
from engine.audit import record
from engine.auth import CONSOLE, check
from engine.errors import TuneloopError
from engine.evaluation.runs import latest_evaluation
from engine.models.registry import PRODUCTION, production_model, resolve
from store import evals as evals_store
from store import splits as splits_store
from store import transaction

# The score that decides a promotion: paired mean ROUGE-L F1 difference on the test split.
PROMOTION_METRIC = "rougeL"


# (score, label, higher is better) in the order the Compare page and the report show them.
METRICS = (
    ("rouge1", "ROUGE-1", True),
    ("rouge2", "ROUGE-2", True),
    ("rougeL", "ROUGE-L", True),
    ("rougeLsum", "ROUGE-Lsum", True),
    ("similarity", "Semantic similarity", True),
    ("has_unsupported", "Unsupported-fact rate", False),
    ("has_unsupported_numbers", "Unsupported numbers/dates rate", False),
    ("unsupported_facts", "Unsupported facts per summary", False),
    ("summary_words", "Summary words", None),
    ("compression", "Compression (document / summary words)", None),
    ("novel_bigrams", "Novel bigrams", None),
    ("cut_off", "Stopped at the token limit", False),
)


@dataclass
class Comparison:
    run_a: str
    run_b: str
    model_a: str
    model_b: str
    dataset_id: int
    table: pd.DataFrame  # one row per metric: A and B means with CIs, B - A with CI and p
    pairs: pd.DataFrame  # one row per document both scored (store.evals.paired_results)
    warnings: list[str]  # what makes the two evaluations less than like for like


def compare_runs(con, run_a: str, run_b: str, seed: int = 0) -> Comparison:
    """A (usually the base or production model) against B on the documents both scored."""
    a, b = evals_store.get_evaluation(con, run_a), evals_store.get_evaluation(con, run_b)
    for run_id, ev in ((run_a, a), (run_b, b)):
        if ev is None or ev["state"] != "succeeded":
            raise TuneloopError(f"Evaluation {run_id} has not finished: wait for it or rerun it.")
    pairs = evals_store.paired_results(con, run_a, run_b)
    if pairs.empty:
        raise TuneloopError(
            "The two evaluations share no test document: evaluate both on one dataset."
        )
    for side in ("a", "b"):
        pairs[f"has_unsupported_{side}"] = (pairs[f"unsupported_facts_{side}"] > 0).astype(int)
        numbers = pairs[f"unsupported_numbers_{side}"]
        pairs[f"has_unsupported_numbers_{side}"] = (numbers > 0).astype(int)
    rows = []
    for name, label, higher in METRICS:
        col_a, col_b = pairs[f"{name}_a"], pairs[f"{name}_b"]
        if col_a.isna().any() or col_b.isna().any():
            continue  # e.g. similarity of an evaluation run without embeddings
        agg_a, agg_b = (stats.bootstrap_ci(c, seed=seed) for c in (col_a, col_b))
        diff, p_value = stats.paired_bootstrap(col_a, col_b, seed=seed)
        clear = diff.low > 0 or diff.high < 0
        better = (
            None if higher is None or not clear else ("B" if (diff.mean > 0) == higher else "A")
        )
        rows.append(
            {"metric": label, "key": name, "higher_is_better": higher}
            | {f"a_{k}": v for k, v in asdict(agg_a).items()}
            | {f"b_{k}": v for k, v in asdict(agg_b).items()}
            | {"delta": diff.mean, "delta_low": diff.low, "delta_high": diff.high}
            | {"p_value": p_value, "clear_winner": better}
        )
    pairs["delta_rougeL"] = pairs["rougeL_b"] - pairs["rougeL_a"]
    return Comparison(
        run_a,
        run_b,
        a["model_id"],
        b["model_id"],
        int(a["dataset_id"]),
        pd.DataFrame(rows),
        pairs,
        unlike(a, b),
    )


def unlike(a: dict, b: dict) -> list[str]:
    """Differences between two evaluations' conditions that bias a comparison."""
    warnings = []
    if json.loads(a["generation"]) != json.loads(b["generation"]):
        warnings.append(
            "The two evaluations used different generation settings: re-evaluate one so both "
            "match (A: {}, B: {}).".format(a["generation"], b["generation"])
        )
    if a["prompt_version"] != b["prompt_version"]:
        warnings.append(
            f"A used prompt v{a['prompt_version']} and B prompt v{b['prompt_version']}."
        )
    if a["dataset_id"] != b["dataset_id"]:
        warnings.append(
            f"A was evaluated on dataset v{a['dataset_id']}, B on v{b['dataset_id']}: only the "
            "test documents both scored are compared."
        )
    return warnings


def promotion_evidence(con, candidate_run: str, current_run: str) -> dict:
    """How the candidate's evaluation compares with the production model's on the same test
    documents; `beats` is a higher paired mean of PROMOTION_METRIC."""
    table = compare_runs(con, current_run, candidate_run).table.set_index("key")
    row = table.loc[PROMOTION_METRIC]
    return {
        "metric": PROMOTION_METRIC,
        "difference": float(row["delta"]),
        "low": float(row["delta_low"]),
        "high": float(row["delta_high"]),
        "p_value": float(row["p_value"]),
        "beats": bool(row["delta"] > 0),
    }


def promote(
    con,
    model_id: str,
    user: dict | None = CONSOLE,
    override_reason: str = "",
    dataset_id: int | None = None,
) -> dict:
    """Make `model_id` the production model if it beats the current one on the test split of
    its newest evaluation's dataset; with an override reason, promote it regardless and record
    why. Returns the evidence (None when there was none to compare). Admins only. The app and
    the CLI call `engine.followups.promote_and_publish`, which also hands the new model to a
    running API server."""
    check(user, "promote")
    resolve(con, model_id)  # a clear error for an unknown model
    current = production_model(con)
    if model_id == current:
        raise TuneloopError(f"{model_id} is already the production model.")
    candidate_run = latest_evaluation(con, model_id, dataset_id)
    dataset = (
        int(evals_store.get_evaluation(con, candidate_run)["dataset_id"]) if candidate_run else None
    )
    current_run = latest_evaluation(con, current, dataset) if candidate_run else None
    evidence = (
        promotion_evidence(con, candidate_run, current_run)
        if candidate_run and current_run
        else None
    )
    override_reason = override_reason.strip()
    if not override_reason:
        if evidence is None:
            raise TuneloopError(
                f"Evaluate {model_id} and the production model {current} on the same test "
                "split first (Compare page), or give a reason to promote it without evidence."
            )
        if not evidence["beats"]:
            raise TuneloopError(
                f"{model_id} does not beat the production model {current} on the test split: "
                f"ROUGE-L {evidence['difference']:+.4f} (95% CI {evidence['low']:+.4f} to "
                f"{evidence['high']:+.4f}). Give a reason to promote it anyway."
            )
    with transaction(con):
        splits_store.set_setting(con, PRODUCTION, model_id)
        evals_store.add_promotion(
            con,
            model_id,
            current,
            candidate_run,
            current_run,
            evidence,
            override_reason or None,
            user["name"],
        )
        record(
            con,
            user,
            "promote",
            model_id,
            before={"production": current},
            after={"production": model_id},
            evidence=evidence,
            override_reason=override_reason,
        )
    return evidence
