"""Summary metrics (engine/metrics.py: ROUGE parity with rouge-score, facts, novelty) and the
bootstrap statistics (engine/stats.py)."""

import numpy as np
import pytest
from rouge_score import rouge_scorer

from engine.metrics import novel_ngram_ratio, rouge, semantic_similarity, unsupported_facts
from engine.stats import bootstrap_ci, paired_bootstrap

DOC = (
    "On March 3, 2021, Maria Lopez slipped on a wet floor at the Fairview Market in Dayton. "
    "She broke her wrist. Fairview Market settled the claim for $45,000 in June 2022."
)


def test_rouge_matches_the_rouge_score_package():
    pairs = [
        ("The cat sat on the mat.", "A cat was sitting on the mat."),
        ("Grants for safer crossings near schools.", "The bill funds school crossings."),
    ]
    ours = rouge([p for p, _ in pairs], [r for _, r in pairs])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    for i, (p, r) in enumerate(pairs):
        expected = scorer.score(r, p)
        for t in ours:
            assert ours[t][i] == pytest.approx(expected[t].fmeasure)
    assert ours["rouge1"][0] > ours["rouge1"][1] > 0
    # By hand: stemmed unigrams "cat on the mat" overlap, 4 of 6 predicted and 4 of 7 reference
    # words, F1 = 2 * 4 / (6 + 7); bigrams "on the", "the mat": 2 of 5 and 2 of 6, F1 = 4 / 11.
    assert ours["rouge1"][0] == pytest.approx(8 / 13)
    assert ours["rouge2"][0] == pytest.approx(4 / 11)


def test_unsupported_facts_catch_an_invented_date_and_pass_a_faithful_summary():
    faithful = (
        "Maria Lopez broke her wrist at Fairview Market on March 3, 2021; it settled for $45,000."
    )
    assert unsupported_facts(faithful, DOC) == []
    invented = "Maria Lopez fell on April 9, 2020 and received $60,000 from Acme Grocers."
    missing = unsupported_facts(invented, DOC)
    assert "April 9, 2020" in missing and "60000" in missing and "Acme Grocers" in missing


def test_unsupported_facts_accept_how_summaries_restate_a_document():
    bill = (
        "The Secretary of Homeland Security and each local educational agency shall, within "
        "three years and for twenty-five percent of the funds under 89 Fed. Reg. 78207, report "
        "to the Secretary of Labor."
    )
    restated = (
        "The Department of Homeland Security (DHS) and LEAs must (1) report within 3 years on "
        "25% of the funds, and (2) tell the Department of Labor."
    )
    assert unsupported_facts(restated.replace("LEAs", "LEA"), bill) == []
    invented = "NASA and the Acme Institute must report by 2031 on 40% of the funds."
    assert unsupported_facts(invented, bill) == ["2031", "40", "Acme Institute", "NASA"]
    # Amounts agree however they are written; a different amount does not.
    award = "The jury awarded $1,200,000 to the family."
    assert unsupported_facts("They won $1.2 million.", award) == []
    assert unsupported_facts("They won $1.5 million.", award) == ["1.5million"]
    # A generation stopped by its token limit may end inside a number: that word is not checked.
    assert unsupported_facts("The rule (89 Fed. Reg. 7820", bill) == ["7820"]
    assert unsupported_facts("The rule (89 Fed. Reg. 7820", bill, cut_off=True) == []


def test_novel_ngrams():
    assert novel_ngram_ratio("She broke her wrist.", DOC) == 0.0
    assert novel_ngram_ratio("A customer was injured badly.", DOC) == 1.0


def test_semantic_similarity_with_a_fake_embedder():
    def embed(texts):
        return np.array([[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts])

    assert semantic_similarity(["cat", "dog"], ["a cat", "a cat"], embed).tolist() == [1.0, 0.0]


def test_bootstrap_is_reproducible_with_a_seed_and_covers_the_mean():
    values = np.random.default_rng(1).normal(0.3, 0.1, 200)
    a, b = bootstrap_ci(values, seed=7), bootstrap_ci(values, seed=7)
    assert a == b
    assert a.low < values.mean() < a.high and a.high - a.low < 0.05
    assert bootstrap_ci(values, seed=8) != a


def test_paired_bootstrap_detects_a_real_improvement_only():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, 100)
    better = base + 0.05 + rng.normal(0, 0.01, 100)
    diff, p = paired_bootstrap(base, better, seed=1)
    assert diff.low > 0 and p < 0.01
    _, p_same = paired_bootstrap(base, base + rng.normal(0, 0.01, 100), seed=1)
    assert p_same > 0.05
