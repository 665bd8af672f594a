"""How long a search has left: the remaining trials' plans priced by the calibration.

Pure arithmetic, no Ray. Every trial's plan (epochs of each phase) is known from its config;
the calibrated seconds of one epoch of each phase are learnt from the trials' own reports
(each epoch's increase of `calibrated_latency_s`: the calibration table times the steps
taken), so a plan's calibrated cost is known before the trial starts. A plan leaves out the
SSL epochs the trial is sure to take from the cache (`ssl_schedule: budget`: each seed's SSL+SL
baseline holds every MixTraining trial's SSL phase). A trial's slot time is then taken in two
parts, each measured on the trials that finished: its training seconds per calibrated second
(`rate`; below 1 where SSL epochs came from the cache unforeseen) and what the table leaves
out, per trial (`overhead`: evaluation, checkpoints, data set-up), spread over its plan.
One ratio of slot time to calibrated time is not enough: the first trials to finish are the
cheap SL baselines, where the fixed part weighs most (docs/benchmarks.md, "The progress
display's ETA").
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

PHASES = ("ssl", "mix", "sl")


@dataclass(frozen=True)
class TrialWork:
    """One trial as the ETA sees it.

    Args:
        plan: epochs per phase (`ssl`, `mix`, `sl`).
        finished: it ended (its remaining work is 0).
        calibrated_done: calibrated seconds of the epochs it reported.
        slot_s: wall-clock seconds it held its slot so far (Ray's `time_total_s`).
        train_s: of those, seconds spent training (`compute_s`: cached SSL epochs cost none).
        reused_epochs: SSL epochs it took from the cache so far (`ssl_epochs_reused`).
        plan_skips_reuse: its plan leaves out the SSL epochs it was expected to take from the
            cache, so the calibrated seconds of those it took count neither as work done nor
            in the rate (`trained`).
    """

    plan: Mapping[str, float]
    finished: bool = False
    calibrated_done: float = 0.0
    slot_s: float = 0.0
    train_s: float | None = None
    reused_epochs: int = 0
    plan_skips_reuse: bool = False

    def trained(self, ssl_epoch: float | None) -> float:
        """Calibrated seconds done that its plan counts: all of them, or (`plan_skips_reuse`)
        those left once its cached SSL epochs (`ssl_epoch` calibrated seconds each) are out."""
        if not self.plan_skips_reuse or not self.reused_epochs:
            return self.calibrated_done
        return max(0.0, self.calibrated_done - self.reused_epochs * (ssl_epoch or 0.0))


@dataclass
class EpochCosts:
    """Calibrated seconds of one epoch of each phase, learnt from epoch-by-epoch reports.

    `over_sl` prices a phase's epoch before any was seen, from the first SL epoch: an epoch of
    a phase with as many batches as SL (MIX always; SSL on the labelled images) costs an SL
    epoch times the calibration table's step ratio of that phase to SL.
    """

    over_sl: dict[str, float] = field(default_factory=dict)
    seen: dict[str, list[float]] = field(default_factory=dict)
    last: dict[str, tuple[int, float]] = field(default_factory=dict)

    def observe(self, trial_id: str, epoch: int, phase: str, calibrated: float) -> None:
        """A report: the trial's `epoch` (1-based) ended in `phase`, cumulative `calibrated`."""
        before = self.last.get(trial_id)
        self.last[trial_id] = (epoch, calibrated)
        if before is None:
            start = (0, 0.0) if epoch == 1 else None  # first epoch: the increase is the value
        else:
            start = before if epoch == before[0] + 1 else None  # skipped reports: no sample
        if start is not None and phase in PHASES and calibrated > start[1]:
            self.seen.setdefault(phase, []).append(calibrated - start[1])

    def cost(self, phase: str) -> float | None:
        values = self.seen.get(phase)
        if values:
            return statistics.median(values)
        if phase in self.over_sl and self.seen.get("sl"):
            return statistics.median(self.seen["sl"]) * self.over_sl[phase]
        return None

    def plan_cost(self, plan: Mapping[str, float]) -> float | None:
        """Calibrated seconds of a whole plan; None while a phase it needs is unpriced."""
        total = 0.0
        for phase, epochs in plan.items():
            if epochs:
                cost = self.cost(phase)
                if cost is None:
                    return None
                total += epochs * cost
        return total


@dataclass(frozen=True)
class Estimate:
    """Seconds left (None until the costs and the rate are known) and what they rest on."""

    seconds: float | None
    rate: float | None  # training seconds per calibrated second
    remaining_calibrated: float | None
    overhead: float = 0.0  # slot seconds per trial outside training


def slot_model(
    work: Iterable[TrialWork], ssl_epoch: float | None = None
) -> tuple[float, float] | None:
    """(rate, overhead): training seconds per calibrated second and slot seconds per trial
    beyond training, over the finished trials; over the running ones (rate only, slot time
    per calibrated second, no overhead) before any finished; None before any epoch.
    `ssl_epoch`: the calibrated seconds of an SSL epoch (`TrialWork.trained`)."""
    work = list(work)
    done = [w for w in work if w.finished and w.trained(ssl_epoch) > 0]
    if done:
        train = [w.train_s if w.train_s is not None else w.slot_s for w in done]
        rate = sum(train) / sum(w.trained(ssl_epoch) for w in done)
        overhead = sum(w.slot_s - t for w, t in zip(done, train, strict=True)) / len(done)
        return rate, max(0.0, overhead)
    running = [w for w in work if not w.finished]
    calibrated = sum(w.trained(ssl_epoch) for w in running)
    return (sum(w.slot_s for w in running) / calibrated, 0.0) if calibrated > 0 else None


def estimate(
    work: list[TrialWork],
    unseen: list[Mapping[str, float]],
    costs: EpochCosts,
    slots: int,
    earlier: Sequence[TrialWork] = (),
) -> Estimate:
    """Seconds until every trial (`work` and the not yet created `unseen` plans) ends.

    Each unfinished trial adds rate x (plan cost - calibrated done) + overhead x (the share of
    its plan still to run); each unseen plan rate x its cost + overhead. The trials share
    `slots` slots: seconds = that sum / slots. `earlier`: finished trials of an earlier phase,
    which count towards the rate and overhead only.
    """
    ssl_epoch = costs.cost("ssl")
    model = slot_model([*work, *earlier], ssl_epoch)
    left: list[tuple[float, float]] = []  # (calibrated seconds left, share of the plan left)
    for w in work:
        if w.finished:
            continue
        cost = costs.plan_cost(w.plan)
        if cost is None:
            return Estimate(None, model and model[0], None)
        rest = max(0.0, cost - w.trained(ssl_epoch))
        left.append((rest, rest / cost if cost > 0 else 0.0))
    for plan in unseen:
        cost = costs.plan_cost(plan)
        if cost is None:
            return Estimate(None, model and model[0], None)
        left.append((cost, 1.0))
    remaining = sum(c for c, _ in left)
    if model is None:
        return Estimate(None, None, remaining)
    rate, overhead = model
    seconds = sum(rate * c + overhead * share for c, share in left)
    return Estimate(seconds / max(1, slots), rate, remaining, overhead)
