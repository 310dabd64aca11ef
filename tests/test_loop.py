"""The loop's time to value: the ETA of a training run and of the evaluations after it, and the
Retrain click that returns at once with a queued run."""

from __future__ import annotations

import pytest

from engine.training.eta import (
    TRAINING_ESTIMATES,
    Eta,
    Phase,
    followup_seconds,
    training_plan,
)

# A CPU demo run's shape: 1 s per validation batch, 3 s per training step, 2 s per summary.
COSTS = {"validation loss": 1.0, "training": 3.0, "validation summaries": 2.0, "saving": 3.0}


def simulate(plan: list[Phase], eta: Eta, costs: dict) -> list[tuple[float, float, float]]:
    """Run the plan on a fake clock, one update per unit of work as the callback does:
    (elapsed, ETA shown, actual time left) after each unit."""
    total = sum(p.units * costs[p.kind] for p in plan)
    now, shown = 0.0, []
    for phase in plan:
        eta.begin(phase.kind, now)
        left = eta.update(0, now)
        shown.append((now, left, total - now))
        for done in range(1, phase.units + 1):
            now += costs[phase.kind]
            shown.append((now, eta.update(done, now), total - now))
    return shown


def test_the_plan_follows_the_trainers_order():
    plan = training_plan(24, 8, 4, 4, summaries_last_only=True)
    kinds = [p.kind for p in plan]
    assert kinds[:2] == ["validation loss", "training"]  # the base model's loss, no summaries
    assert kinds.count("training") == 3 and sum(p.units for p in plan if p.kind == "training") == 24
    assert kinds.count("validation summaries") == 1 and kinds[-2:] == [
        "validation summaries",
        "saving",
    ]
    every = training_plan(10, 4, 4, 4, summaries_last_only=False)
    assert [p.units for p in every if p.kind == "training"] == [4, 4, 2]  # the last chunk is short
    assert [p.kind for p in every].count("validation summaries") == 4
    assert [p.kind for p in training_plan(5, 2, 0, 4, False)] == ["training", "saving"]


def test_the_eta_is_within_30_percent_once_a_tenth_is_done():
    plan = training_plan(24, 8, 4, 4, summaries_last_only=True)
    points = simulate(plan, Eta(plan, TRAINING_ESTIMATES), COSTS)
    total = points[-1][0]
    late = [(t, shown, actual) for t, shown, actual in points if t >= 0.1 * total and actual > 0]
    assert late and all(shown is not None for _, shown, _ in late)
    worst = max(abs(shown - actual) / actual for _, shown, actual in late)
    assert worst <= 0.3, worst


def test_the_eta_uses_the_step_rate_not_the_time_since_the_start():
    """The walk: a long baseline validation, then step 1 said 3.4 h for 17 minutes left."""
    plan = [Phase("validation loss", 10), Phase("training", 24), Phase("saving", 1)]
    eta = Eta(plan, TRAINING_ESTIMATES)
    eta.begin("validation loss", 0.0)
    eta.update(10, 570.0)  # 9.5 minutes of baseline validation
    eta.begin("training", 570.0)
    left = eta.update(1, 612.0)  # the first step took 42 s
    assert left == pytest.approx(23 * 42 + 3)
    old = 612.0 / 1 * 23  # elapsed / steps x steps left: what the progress event said
    assert old > 3 * left


def test_unmeasured_kinds_are_priced_from_measured_ones_and_estimates_never_loop():
    eta = Eta([Phase("training", 2), Phase("validation loss", 3)], TRAINING_ESTIMATES)
    eta.begin("training", 0.0)
    assert eta.update(0, 0.0) is None  # nothing measured, nothing to price a step from
    assert eta.update(1, 6.0) == pytest.approx(6.0 + 3 * 2.0)  # a validation batch: 1/3 step
    with pytest.raises(ValueError):
        eta.begin("evaluation", 7.0)


def test_a_like_run_s_rates_keep_a_slow_first_unit_from_pricing_the_rest():
    """Click 2 of bench/loop.py: the base model's first validation batch (warm-up) was slow,
    and priced every training step from it. A like earlier run's measured rates are the prior."""
    plan = training_plan(24, 8, 4, 4, summaries_last_only=True)
    cold = Eta(plan, TRAINING_ESTIMATES)
    first = Eta(plan, TRAINING_ESTIMATES)
    total = sum(p.units * COSTS[p.kind] for p in plan)
    simulate(plan, first, COSTS)
    warm = Eta(plan, TRAINING_ESTIMATES, prior=first.measured(total))
    for eta in (cold, warm):
        eta.begin("validation loss", 0.0)
        eta.left = eta.update(1, 8.0)  # a first batch 8x slower than the rest
    assert abs(warm.left - (total - 1.0)) / (total - 1.0) < 0.1
    assert cold.left > 2 * (total - 1.0)


def test_the_worker_leaves_its_rates_and_the_next_like_run_gets_them(con, tmp_path):
    import json

    from engine.jobs import runfolder
    from engine.training.eta import RATES
    from engine.training.runs import measured_rates
    from store import runs as runs_store

    shape = {"base_model": "m", "method": "lora", "batch_size": 2, "grad_accum": 1}
    shape |= {"max_length": 512, "max_new_tokens": 160}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rates = {"spent": {"training": 72.0}, "units": {"training": 24}}
    runfolder.write_json(run_dir / RATES, rates)
    runs_store.add_run(con, "t1", "train", str(run_dir), shape, "ada")
    assert measured_rates(con, shape) is None  # not finished
    runs_store.set_state(con, "t1", "succeeded")
    assert measured_rates(con, shape) == json.loads(json.dumps(rates))
    assert measured_rates(con, shape | {"batch_size": 4}) is None  # another shape costs more


def test_the_evaluations_after_training_are_priced_from_history_or_the_step_rate():
    eta = Eta([Phase("training", 4)], TRAINING_ESTIMATES)
    eta.begin("training", 0.0)
    eta.update(2, 16.0)  # 8 s a step
    plan = {"evaluations": 2, "documents": 4, "batch_size": 32, "max_new_tokens": 160}
    unmeasured = followup_seconds(plan, eta, overhead_s=9.0)
    assert unmeasured == pytest.approx(2 * (9.0 + 3.0 + 160 * 0.02 * 8.0 + 1.5))
    measured = followup_seconds(
        plan | {"measured": {"fixed_s": 12.0, "token_step_s": 0.1}}, eta, overhead_s=9.0
    )
    assert measured == pytest.approx(2 * (12.0 + 16.0 + 1.5))
    assert followup_seconds(plan | {"evaluations": 0}, eta, 9.0) == 0.0


def test_the_retrain_click_returns_at_once_with_the_run_queued_after(home, monkeypatch):
    import threading

    from engine.data import split
    from engine.jobs import runqueue
    from engine.paths import db_path
    from engine.training.runs import retrain_status
    from store import connect
    from store import runs as runs_store
    from tests.conftest import signed_in_app

    app = signed_in_app("ada", "admin", "pages/train.py")
    assert not app.exception, app.exception
    monkeypatch.setattr(runqueue, "pump", lambda con: [])  # queue the run, start no worker
    release, real_split = threading.Event(), split.split_examples

    def held_split(*args, **kwargs):  # the click's slow part (it may deduplicate first)
        assert release.wait(60), "the click waited for the split"
        return real_split(*args, **kwargs)

    monkeypatch.setattr(split, "split_examples", held_split)
    app.button(key="train_retrain").click().run()  # returns while the split is still held
    assert not app.exception, app.exception
    assert any("Preparing the retrain" in i.value for i in app.info)
    con = connect(db_path())
    assert runs_store.list_runs(con, kind="train").empty
    release.set()
    state = retrain_status({"name": "ada"})
    state["thread"].join(60)
    assert state["error"] is None, state["error"]
    queued = runs_store.list_runs(con, kind="train")
    try:
        assert queued["id"].tolist() == [state["result"][0]]
        assert queued["state"].iloc[0] == "queued"
    finally:  # the app's poller would start it once this test is over
        runqueue.cancel_run(con, state["result"][0])
    app.run()
    assert not app.exception, app.exception
    assert retrain_status({"name": "ada"}) is None  # handed out once
