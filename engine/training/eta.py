"""How long a run has left, honestly: the measured rate of the phase in progress, and for the
phases still to come the rate measured for their kind so far, else an estimate.

    eta = Eta([Phase("validation loss", 2), Phase("training", 8), Phase("validation loss", 2)],
              estimates={"validation loss": 2.0, "training": 7.0})
    eta.begin("validation loss", now)      # a phase starts
    left = eta.update(1, now)              # 1 unit of it done: seconds left of the whole plan

A plan is the run's phases in order, each with its units of work (training steps, validation
batches, summaries, evaluations) and a kind: phases of one kind cost the same per unit (the
validation loss at step 8 costs what it cost at step 0), so one measured round prices the
rest. An estimate is seconds per unit, or `like=(kind, factor)`: until a kind is measured it
costs `factor` times another kind's measured rate (a training step is about three validation
batches: forward and backward against forward only). The walk's ETA divided the time since the
start, baseline validation included, by the steps done and ignored every validation round to
come: 3.4 h at step 1 for 17 minutes of training left.
"""

from __future__ import annotations

from dataclasses import dataclass

RATES = "rates.json"  # a finished run's measured seconds and units per kind (`Eta.measured`)
PRIOR_RATES = "prior_rates.json"  # the RATES of an earlier run of the same shape, for the next
# What makes two runs cost the same per unit: the model, how it is trained and the batch shape.
SHAPE = (
    "base_model",
    "method",
    "quantization",
    "batch_size",
    "grad_accum",
    "max_length",
    "max_new_tokens",
)


@dataclass
class Phase:
    kind: str  # what the work is: "training", "validation loss", "evaluation", …
    units: int  # how much of it: steps, batches, summaries


@dataclass
class Estimate:
    seconds: float | None = None  # seconds per unit before any is measured
    like: tuple[str, float] | None = None  # (kind, factor): factor x that kind's measured rate


class Eta:
    """Seconds left of a plan of phases (see the module docstring). `begin` the phases in plan
    order (a phase skipped, such as an evaluation round early stopping never reaches, is passed
    over by beginning a later one) and `update` with the units done of the current one."""

    def __init__(
        self,
        plan: list[Phase],
        estimates: dict[str, Estimate | float] | None = None,
        prior: dict | None = None,
    ):
        """`prior`: `measured()` of an earlier run of the same shape on this machine; it counts
        as measured, so the first, slow units of a phase (warm-up) do not price all the rest."""
        self.plan = plan
        self.estimates = {
            k: v if isinstance(v, Estimate) else Estimate(seconds=v)
            for k, v in (estimates or {}).items()
        }
        prior = prior or {}
        self.spent: dict[str, float] = dict(prior.get("spent", {}))  # seconds measured per kind
        self.units: dict[str, int] = dict(prior.get("units", {}))  # units measured per kind
        self.index = -1
        self.started = 0.0
        self.done = 0
        self.now: float | None = None  # the time of the last update

    def begin(self, kind: str, now: float):
        """The next phase of this kind in the plan starts now (the current one has ended)."""
        self._close(now)
        for i in range(self.index + 1, len(self.plan)):
            if self.plan[i].kind == kind:
                self.index, self.started, self.done = i, now, 0
                return
        raise ValueError(f"No {kind!r} phase is left in the plan.")

    def measured(self, now: float) -> dict:
        """What the run measured (the phase in progress closed at `now`), to be the `prior` of
        the next run of the same shape."""
        self._close(now)
        return {"spent": dict(self.spent), "units": dict(self.units)}

    def _close(self, now: float):
        if 0 <= self.index < len(self.plan) and self.done:
            kind = self.plan[self.index].kind
            self.spent[kind] = self.spent.get(kind, 0.0) + now - self.started
            self.units[kind] = self.units.get(kind, 0) + self.done
        self.done = 0

    def rate(self, kind: str, now: float | None = None, _seen: tuple = ()) -> float | None:
        """Seconds per unit of a kind: measured (the current phase counts once a unit is done,
        as of `now` or the last update), else its estimate; None when neither is known."""
        now = self.now if now is None else now
        spent, units = self.spent.get(kind, 0.0), self.units.get(kind, 0)
        current = self.plan[self.index] if 0 <= self.index < len(self.plan) else None
        if current is not None and current.kind == kind and self.done and now is not None:
            spent, units = spent + now - self.started, units + self.done
        if units:
            return spent / units
        estimate = self.estimates.get(kind)
        if estimate is None:
            return None
        if estimate.like and estimate.like[0] not in (kind, *_seen):  # no estimate loops
            other = self.rate(estimate.like[0], now, (*_seen, kind))
            if other is not None:
                return other * estimate.like[1]
        return estimate.seconds

    def update(self, done: int, now: float) -> float | None:
        """`done` units of the current phase are finished: seconds left of the whole plan, or
        None while some phase to come has neither a measurement nor an estimate."""
        self.done, self.now = done, now
        if not 0 <= self.index < len(self.plan):
            return None
        total = 0.0
        current = self.plan[self.index]
        rate = self.rate(current.kind, now)
        if rate is None:
            return None
        if done:
            total += max(0.0, current.units - done) * rate
        else:  # nothing measured in this phase yet: its whole cost, less the time already in it
            total += max(0.0, current.units * rate - (now - self.started))
        for phase in self.plan[self.index + 1 :]:
            rate = self.rate(phase.kind, now)
            if rate is None:
                return None
            total += phase.units * rate
        return total


def training_plan(
    total_steps: int,
    eval_every: int,
    n_eval_batches: int,
    n_summaries: int,
    summaries_last_only: bool,
) -> list[Phase]:
    """A training run's phases after the model has loaded, in the order the trainer runs them:
    the base model's validation (when there is a validation split), then training chunks of
    `eval_every` steps each followed by a validation round (the trainer also validates after
    the last step), then saving the final weights."""
    plan: list[Phase] = []

    def validation(last: bool):
        if n_eval_batches:
            plan.append(Phase("validation loss", n_eval_batches))
            if n_summaries and (last or not summaries_last_only):
                plan.append(Phase("validation summaries", n_summaries))

    validation(last=False)
    done = 0
    while done < total_steps:
        chunk = min(eval_every, total_steps - done) if n_eval_batches else total_steps
        plan.append(Phase("training", chunk))
        done += chunk
        if n_eval_batches:
            validation(last=done >= total_steps)
    plan.append(Phase("saving", 1))
    return plan


# Until measured: a training step is a forward and a backward pass, about three validation
# batches of the same size; a validation batch a third of a step; saving a LoRA adapter a few
# seconds; one summary about half a step on the CPU demo preset (bench/results/loop-cpu.txt).
TRAINING_ESTIMATES = {
    "training": Estimate(like=("validation loss", 3.0)),
    "validation loss": Estimate(like=("training", 1 / 3)),
    "validation summaries": Estimate(like=("training", 0.5)),
    "saving": Estimate(seconds=3.0),
}


# Until an evaluation has been measured on this install: one generated token of a batch costs
# about 2% of a CPU demo training step (bench/results/loop-cpu.txt: 0.16 s a token for 4 test
# documents against 8.5 s a step), and scoring with the embedder takes a few seconds.
TOKEN_STEP_PER_TRAINING_STEP = 0.02
SCORING_S = 3.0
POLL_GAP_S = 1.5  # the poller notices a finished run and starts the next one every 2 s


def followup_seconds(followup: dict, eta: Eta, overhead_s: float) -> float | None:
    """Seconds the evaluations after training will take (the app's followup.json: how many
    evaluations, documents, batch size and max_new_tokens, and `measured` costs of an earlier
    evaluation on this install when there is one). Unmeasured, an evaluation's start and model
    load cost what this run's did (`overhead_s`), and its tokens are priced from the measured
    training step."""
    k = int(followup.get("evaluations") or 0)
    if not k:
        return 0.0
    measured = followup.get("measured") or {}
    token = measured.get("token_step_s")
    if token is None:
        step = eta.rate("training")
        if step is None:
            return None
        token = TOKEN_STEP_PER_TRAINING_STEP * step
    fixed = measured.get("fixed_s", overhead_s + SCORING_S)
    batches = -(-int(followup["documents"]) // max(1, int(followup["batch_size"])))
    return k * (fixed + batches * int(followup["max_new_tokens"]) * token + POLL_GAP_S)
