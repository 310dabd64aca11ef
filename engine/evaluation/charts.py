"""Altair charts of a comparison, shared by the Compare page and the HTML report: per-metric
distributions of both models and each document's score under A against B."""

from __future__ import annotations

import altair as alt
import pandas as pd

DISTRIBUTION_METRICS = {
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "similarity": "Similarity",
}


def distributions(pairs: pd.DataFrame, model_a: str, model_b: str) -> alt.FacetChart:
    """Per-document score distributions of both models, one box plot per metric."""
    frames = []
    for key, label in DISTRIBUTION_METRICS.items():
        for side, model in (("a", f"A: {model_a}"), ("b", f"B: {model_b}")):
            values = pairs[f"{key}_{side}"].dropna()
            frames.append(pd.DataFrame({"metric": label, "model": model, "value": values}))
    data = pd.concat(frames, ignore_index=True)
    return (
        alt.Chart(data)
        .mark_boxplot(extent="min-max")
        .encode(
            x=alt.X("model:N", title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("value:Q", title="score per document"),
            color=alt.Color("model:N", legend=alt.Legend(orient="bottom", title=None)),
        )
        .properties(width=110, height=220)
        .facet(column=alt.Column("metric:N", title=None, sort=list(DISTRIBUTION_METRICS.values())))
    )


def scatter(pairs: pd.DataFrame, metric: str, model_a: str, model_b: str) -> alt.LayerChart:
    """Each document's score under A (x) and B (y); above the diagonal B did better."""
    data = pairs.assign(a=pairs[f"{metric}_a"], b=pairs[f"{metric}_b"])[
        ["example_id", "title", "a", "b"]
    ]
    top = float(max(data["a"].max(), data["b"].max(), 0.01))
    points = (
        alt.Chart(data)
        .mark_circle(size=60, opacity=0.7)
        .encode(
            x=alt.X("a:Q", title=f"{metric} — A: {model_a}", scale=alt.Scale(domain=[0, top])),
            y=alt.Y("b:Q", title=f"{metric} — B: {model_b}", scale=alt.Scale(domain=[0, top])),
            tooltip=[
                "example_id",
                "title",
                alt.Tooltip("a:Q", format=".3f"),
                alt.Tooltip("b:Q", format=".3f"),
            ],
        )
    )
    diagonal = (
        alt.Chart(pd.DataFrame({"a": [0, top], "b": [0, top]}))
        .mark_line(color="gray", strokeDash=[4, 4])
        .encode(x="a:Q", y="b:Q")
    )
    return (diagonal + points).properties(width=360, height=360)
