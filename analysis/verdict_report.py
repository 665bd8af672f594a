"""The words and records of a verdict: headline lines, report.md section, summary.json keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from analysis.configs import MIX
from analysis.fmt import fmt_value, md_table
from analysis.verdict import ALPHA, BASELINES, TEST_RULE, Verdict

NAMES = {"ssl_sl": "SSL+SL", "sl": "SL"}


def config_counts(verdict: Verdict) -> tuple[int, int]:
    """(confirmed, single-seed) MixTraining configurations."""
    mix = verdict.configs[verdict.configs["pipeline"] == MIX]
    confirmed = int(mix["confirmed"].sum()) if len(mix) else 0
    return confirmed, len(mix) - confirmed


def claim_line(verdict: Verdict, baseline: str) -> str:
    """'k of n confirmed configurations dominate SSL+SL at p < 0.05', then the unconfirmed."""
    name = NAMES[baseline]
    confirmed, single = config_counts(verdict)
    if baseline in verdict.untestable:
        line = f"No {name} claim can be confirmed: {name} has {verdict.untestable[baseline]}"
    else:
        k = len(verdict.confirmed_dominance[baseline])
        line = (
            f"{k} of {confirmed} confirmed configurations dominate {name} at p < {ALPHA:g} "
            "(one-sided Welch per objective, Holm-corrected)"
        )
    guesses = len(verdict.unconfirmed_dominating.get(baseline, []))
    return line + (
        f"; {single} unconfirmed (single-seed) configurations make no claim"
        f" ({guesses} of them beat the {name} mean on their one run)"
    )


def hypervolume_line(verdict: Verdict) -> str | None:
    hv = verdict.hypervolume
    if not hv or hv["mixtraining"]["low"] is None or hv["baselines"]["low"] is None:
        return None

    def text(v: dict[str, Any]) -> str:
        return f"{v['value']:.4g} [{v['low']:.4g}, {v['high']:.4g}]"

    ahead = {"mixtraining": "MixTraining ahead", "baselines": "baselines ahead"}
    single = hv["mixtraining"]["unconfirmed"] + hv["baselines"]["unconfirmed"]
    if hv["ahead"] in ahead:
        outcome = ahead[hv["ahead"]]
    elif single:
        outcome = f"not decided: {single} single-seed configuration(s) shape the volumes"
    else:
        outcome = "intervals overlap: neither is ahead"
    return (
        f"Hypervolume of configuration means, in {hv['units']} (95% bootstrap over seeds): "
        "MixTraining front "
        f"{text(hv['mixtraining'])}, baseline means {text(hv['baselines'])}: {outcome}"
    )


def headline_lines(verdict: Verdict) -> list[str]:
    """The verdict's headline: only confirmed claims count; unconfirmed ones are counted."""
    lines = [claim_line(verdict, b) for b in BASELINES]
    hv = hypervolume_line(verdict)
    return lines + ([hv] if hv else [])


def configs_table(verdict: Verdict, metrics: Sequence[str], knobs: Sequence[str]) -> str:
    headers = ["config", "pipeline", *knobs, "seeds", *(f"{m} mean ± std" for m in metrics)]
    headers += ["confirmed", "on front", "knee"]
    rows = []
    for _, c in verdict.configs.iterrows():
        cells = [c["config_id"], c["pipeline"], *(fmt_value(k, c[k]) for k in knobs), c["n"]]
        for m in metrics:
            std = c[f"{m}_std"]
            spread = "" if pd.isna(std) else f" ± {fmt_value(m, std)}"
            cells.append(fmt_value(m, c[f"{m}_mean"]) + spread)
        flags = (c["confirmed"], c["on_front"], c["knee"])
        rows.append([*cells, *("yes" if f else "" for f in flags)])
    return md_table(headers, rows)


def tests_table(verdict: Verdict) -> str:
    rows = [
        [
            t["config_id"],
            NAMES.get(t["baseline"], t["baseline"]),
            t["metric"],
            f"{t['diff']:+.4g}",
            f"[{t['ci_low']:+.4g}, {t['ci_high']:+.4g}]",
            f"{t['p']:.3g}",
            f"{t['p_holm']:.3g}",
        ]
        for _, t in verdict.tests.iterrows()
    ]
    headers = ["config", "vs", "metric", "difference", "95% CI", "p (one-sided)", "claim p (Holm)"]
    return md_table(headers, rows)


def verdict_section(verdict: Verdict, metrics: Sequence[str], knobs: Sequence[str]) -> list[str]:
    """report.md: the configurations, the tests behind each claim, the hypervolume intervals."""
    lines = ["## Verdict over configurations (seeds grouped)", ""]
    lines += [f"- {line}" for line in headline_lines(verdict)] + [""]
    lines += [
        "A configuration is one recipe (pipeline, knobs, fixed settings); its seeds are grouped. "
        "The front and knee here are over configuration means, among the confirmed ones when "
        "any exists. A configuration with one seed is shown but unconfirmed and never makes a "
        "claim.",
        "",
        configs_table(verdict, metrics, knobs),
        "",
        f"Claims: {TEST_RULE}",
        "",
    ]
    if len(verdict.tests):
        lines += [tests_table(verdict), ""]
    else:
        lines += ["No test was run: no confirmed configuration's means dominate a baseline.", ""]
    return lines


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """summary.json's `verdict`: configurations, tests, untestable baselines, hypervolume."""
    return {
        "alpha": ALPHA,
        "rule": TEST_RULE,
        "configurations": verdict.configs.to_dict("records"),
        "claims": verdict.claims.to_dict("records"),
        "tests": verdict.tests.to_dict("records"),
        "untestable": verdict.untestable,
        "unconfirmed_dominating": verdict.unconfirmed_dominating,
        "hypervolume": verdict.hypervolume,
    }


CONTENTION = 1.5  # measured/calibrated this far above the experiment's median ratio: load


def latency_section(done: pd.DataFrame) -> list[str]:
    """report.md: measured vs calibrated latency per trial, flagging trials slowed by load.

    The calibrated figure is load-independent; a trial whose measured/calibrated ratio sits
    far above the experiment's median ran while the machine was busy (contention).
    """
    if "calibrated_latency_s" not in done or done["calibrated_latency_s"].isna().all():
        return []
    rows = done[done["calibrated_latency_s"] > 0]
    ratio = rows["train_latency_s"].astype(float) / rows["calibrated_latency_s"].astype(float)
    typical = float(ratio.median())
    table = [
        [
            r["trial_id"],
            r["pipeline"],
            fmt_value("train_latency_s", r["train_latency_s"]),
            fmt_value("calibrated_latency_s", r["calibrated_latency_s"]),
            f"{q:.2f}",
            "contention" if q > CONTENTION * typical else "",
        ]
        for (_, r), q in zip(rows.iterrows(), ratio, strict=True)
    ]
    headers = ["trial", "pipeline", "measured", "calibrated", "measured / calibrated", "note"]
    note = (
        f"`contention`: the measured latency ran more than {CONTENTION:g}x the median ratio "
        f"({typical:.2f}) above its calibration: the machine was busy while it trained."
    )
    return ["## Measured vs calibrated latency", "", md_table(headers, table), "", note, ""]
