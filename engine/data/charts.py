"""Altair charts of the Data overview: counts by status, split, source and flag, and length
histograms."""

from __future__ import annotations

import altair as alt
import pandas as pd


def _count_axis(largest) -> alt.Axis:
    """Whole-number ticks for counts: Vega's tickMinStep alone still puts a tick at 0.5."""
    return alt.Axis(format="d", tickMinStep=1, tickCount=max(1, min(int(largest), 8)))


def count_bars(counts: pd.DataFrame, column: str, title: str) -> alt.Chart:
    """Horizontal bars of `n` per value of `column`, largest first."""
    return (
        alt.Chart(counts, title=title)
        .mark_bar()
        .encode(
            x=alt.X("n:Q", title="examples", axis=_count_axis(counts["n"].max())),
            y=alt.Y(f"{column}:N", sort="-x", title=None),
            tooltip=list(counts.columns),
        )
    )


def length_histogram(hist: pd.DataFrame, title: str) -> alt.Chart:
    """Bars of a word-length histogram (store/examples.py `length_histogram`: words, width,
    examples), each spanning its bin; the axis starts at 0 words."""
    data = hist.assign(end=hist["words"] + hist["width"])
    return (
        alt.Chart(data, title=title)
        .mark_bar()
        .encode(
            x=alt.X("words:Q", bin="binned", title="words", scale=alt.Scale(domainMin=0)),
            x2="end:Q",
            y=alt.Y("examples:Q", title="examples", axis=_count_axis(hist["examples"].max())),
            tooltip=[
                alt.Tooltip("words:Q", title="from"),
                alt.Tooltip("end:Q", title="below"),
                "examples:Q",
            ],
        )
    )
