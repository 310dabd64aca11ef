"""A comparison as one self-contained HTML file, to share with people who do not use the app.

    python -m engine compare RUN_A RUN_B --report report.html

Tables, the charts (rendered to inline SVG with vl-convert, so the file needs no script and no
network), blind-preference results if there are any, the review effort each model's drafts cost
(engine/labelling/savings.py) if any were reviewed, and the documents where B lost most against
A with both summaries marked where they depart from the reference (`diff_html`, which the Compare
page shows too).
"""

from __future__ import annotations

import html
import time

import pandas as pd

from engine.evaluation import charts
from engine.evaluation.comparison import Comparison

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
mark { background: #ffe08a; }
.doc { border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem 1rem; margin: 1rem 0; }
.cols { display: grid; grid-template-columns: 1fr 1fr 1fr; gap: 1rem; }
.muted { color: #666; font-size: 0.85rem; }
"""


def word_diff(summary: str, reference: str) -> list[tuple[str, bool]]:
    """The summary's words, each with whether it lines up with the reference (the longest
    matching blocks of a word-level diff, compared case-insensitively)."""
    import difflib

    words, ref = summary.split(), reference.split()
    norm = lambda ws: [w.lower().strip(".,;:()\"'") for w in ws]  # noqa: E731
    matcher = difflib.SequenceMatcher(None, norm(ref), norm(words), autojunk=False)
    matched = [False] * len(words)
    for block in matcher.get_matching_blocks():
        for i in range(block.b, block.b + block.size):
            matched[i] = True
    return list(zip(words, matched))


def diff_html(summary: str, reference: str) -> str:
    """The summary as escaped HTML with the words that do not line up with the reference
    marked, for the Compare page and the report."""
    return " ".join(
        html.escape(w) if same else f"<mark>{html.escape(w)}</mark>"
        for w, same in word_diff(summary, reference)
    )


def _svg(chart) -> str:
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_dict())


def _number(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def _interval(mean, low, high) -> str:
    return f"{_number(mean)} <span class='muted'>[{_number(low)}, {_number(high)}]</span>"


def summary_rows(comparison: Comparison) -> str:
    rows = []
    for r in comparison.table.itertuples():
        winner = r.clear_winner if isinstance(r.clear_winner, str) else "—"
        rows.append(
            f"<tr><td>{html.escape(r.metric)}</td>"
            f"<td class='num'>{_interval(r.a_mean, r.a_low, r.a_high)}</td>"
            f"<td class='num'>{_interval(r.b_mean, r.b_low, r.b_high)}</td>"
            f"<td class='num'>{_interval(r.delta, r.delta_low, r.delta_high)}</td>"
            f"<td class='num'>{r.p_value:.3f}</td><td>{winner}</td></tr>"
        )
    return "".join(rows)


def _document(row, model_a: str, model_b: str) -> str:
    excerpt = html.escape(row.document[:2000]) + ("…" if len(row.document) > 2000 else "")
    return (
        f"<div class='doc'><b>{html.escape(str(row.title or row.example_id))}</b> "
        f"<span class='muted'>example {row.example_id} · ROUGE-L A {row.rougeL_a:.3f}, "
        f"B {row.rougeL_b:.3f} (Δ {row.delta_rougeL:+.3f})</span>"
        f"<details><summary>Document</summary><p>{excerpt}</p></details>"
        f"<div class='cols'><div><b>Reference</b><p>{html.escape(row.reference)}</p></div>"
        f"<div><b>A: {model_a}</b><p>{diff_html(row.summary_a, row.reference)}</p></div>"
        f"<div><b>B: {model_b}</b><p>{diff_html(row.summary_b, row.reference)}</p></div>"
        f"</div></div>"
    )


def comparison_html(
    comparison: Comparison,
    preferences: pd.DataFrame | None = None,
    settings: str = "",
    n_documents: int = 10,
    savings: pd.DataFrame | None = None,
) -> str:
    """The report as an HTML string. `savings`: engine.labelling.savings.savings_table rows."""
    models = (comparison.model_a, comparison.model_b)
    a, b = html.escape(comparison.model_a), html.escape(comparison.model_b)
    pairs = comparison.pairs.sort_values("delta_rougeL")
    preference_html = ""
    if preferences is not None and not preferences.empty:
        preference_html = "<h2>Blind A/B preference</h2>" + preferences.to_html(
            index=False, float_format=lambda v: f"{v:.3f}", border=0
        )
    savings_html = ""
    if savings is not None and not savings.empty:
        from engine.labelling.savings import readable

        savings_html = (
            "<h2>Review effort</h2><p class='muted'>Per model that drafted: share of review "
            "decisions that kept the draft unchanged, median word edit distance between draft "
            "and saved text, median seconds per decision, and the change against the model it "
            "was fine-tuned from (two-sample bootstrap 95% CI).</p>"
            + readable(savings).to_html(index=False, border=0)
        )
    worst = "".join(_document(r, a, b) for r in pairs.head(n_documents).itertuples())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tuneloop: {b} vs {a}</title>
<style>{_STYLE}</style></head><body>
<h1>{b} against {a}</h1>
<p class="muted">Tuneloop evaluation report · {time.strftime("%Y-%m-%d %H:%M")} · dataset
v{comparison.dataset_id}, test split · {len(comparison.pairs)} documents scored by both ·
evaluations {html.escape(comparison.run_a)} (A) and {html.escape(comparison.run_b)} (B)
{html.escape(settings)}</p>
{"".join(f"<p><b>Note:</b> {html.escape(w)}</p>" for w in comparison.warnings)}
<h2>Summary</h2>
<p class="muted">Means over the test documents with bootstrap 95% confidence intervals; Δ is B − A
on the same documents (paired bootstrap) with its two-sided p-value. A winner is named only when
the interval of Δ excludes zero. Unsupported facts: numbers, dates, amounts and names in a
summary that its document does not contain.</p>
<table><tr><th>Metric</th><th>A: {a}</th><th>B: {b}</th><th>Δ (B − A)</th><th>p</th>
<th>Clear winner</th></tr>{summary_rows(comparison)}</table>
<h2>Distributions</h2>{_svg(charts.distributions(comparison.pairs, *models))}
<h2>Per document</h2>{_svg(charts.scatter(comparison.pairs, "rougeL", *models))}
{preference_html}
{savings_html}
<h2>Where B lost most to A (ROUGE-L)</h2>
<p class="muted">Marked words do not line up with the reference.</p>{worst}
</body></html>"""
