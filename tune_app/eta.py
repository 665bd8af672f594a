"""How long a search has left: the remaining trials' plans priced by the calibration.

Pure arithmetic, no Ray. Every trial's plan (epochs of each phase) is known from its config;
the calibrated seconds of one epoch of each phase are learnt from the trials' own reports
(each epoch's increase of `calibrated_latency_s`: the calibration table times the steps
taken), so a plan's calibrated cost is known before the trial starts. Evaluation, checkpoints
and process start-up are not in the table: the measured slot-seconds per calibrated second of
the trials so far (`rate`) turn calibrated seconds into wall-clock seconds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
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
    """

    plan: Mapping[str, int]
    finished: bool = False
    calibrated_done: float = 0.0
    slot_s: float = 0.0


@dataclass
class EpochCosts:
    """Calibrated seconds of one epoch of each phase, learnt from epoch-by-epoch reports.

    `mix_over_sl` prices a MIX epoch before any was seen: MIX batches are the SL batches, so
    a MIX epoch costs an SL epoch times the calibration table's MIX/SL step ratio.
    """

    mix_over_sl: float | None = None
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
        if phase == "mix" and self.mix_over_sl is not None and self.seen.get("sl"):
            return statistics.median(self.seen["sl"]) * self.mix_over_sl
        return None

    def plan_cost(self, plan: Mapping[str, int]) -> float | None:
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
    rate: float | None  # slot-seconds per calibrated second
    remaining_calibrated: float | None


def slot_rate(work: Iterable[TrialWork]) -> float | None:
    """Slot-seconds per calibrated second: over finished trials, else over running ones."""
    work = list(work)
    for group in ([w for w in work if w.finished], [w for w in work if not w.finished]):
        calibrated = sum(w.calibrated_done for w in group)
        if calibrated > 0:
            return sum(w.slot_s for w in group) / calibrated
    return None


def estimate(
    work: list[TrialWork], unseen: list[Mapping[str, int]], costs: EpochCosts, slots: int
) -> Estimate:
    """Seconds until every trial (`work` and the not yet created `unseen` plans) ends.

    remaining = sum over unfinished trials of (plan cost - calibrated done), plus the unseen
    plans' costs; seconds = remaining x rate / slots (the trials share `slots` slots).
    """
    remaining = 0.0
    for w in work:
        if w.finished:
            continue
        cost = costs.plan_cost(w.plan)
        if cost is None:
            return Estimate(None, slot_rate(work), None)
        remaining += max(0.0, cost - w.calibrated_done)
    for plan in unseen:
        cost = costs.plan_cost(plan)
        if cost is None:
            return Estimate(None, slot_rate(work), None)
        remaining += cost
    rate = slot_rate(work)
    if rate is None:
        return Estimate(None, None, remaining)
    return Estimate(remaining * rate / max(1, slots), rate, remaining)
