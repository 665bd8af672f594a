"""The words of an analysis: the terminal headline and report.md."""

from __future__ import annotations

from analysis.choose import SINGLE_RUN_WARNING, config_scores, mean_text
from analysis.configs import BASIS_TEXT, BY_CONFIG, BY_RUN, MIX
from analysis.fmt import epochs_text, fmt_delta, fmt_value, md_table, param_text, yes_no
from analysis.hypervolume import KNEE_RULE, REFERENCE_RULE
from analysis.records import last_line
from analysis.summary import (
    PIPELINE_NAMES,
    Analysis,
    beats,
    better_everywhere,
    left_out_counts,
    within_noise,
)
from analysis.verdict_report import headline_lines, latency_section, verdict_section

COMPARED = ("ssl_sl", "sl")  # the paper's claim is against SSL+SL; SL is the cheap floor


def left_out_text(analysis: Analysis) -> str:
    counts = left_out_counts(analysis)
    if not counts:
        return "none left out"
    return "left out: " + ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))


def beat_line(analysis: Analysis, pipeline: str) -> str:
    """'k of N dominate the SSL+SL mean (n seeds)', with the most accurate winner's margins."""
    name, metrics = PIPELINE_NAMES.get(pipeline, pipeline), analysis.experiment.metrics
    stats = analysis.baselines[pipeline]
    winners = beats(analysis, pipeline)
    line = (
        f"{len(winners)} of {len(analysis.mix)} MixTraining trials dominate the {name} mean "
        f"({stats[metrics[0]]['n']} seed(s))"
    )
    if len(winners):
        best = winners.sort_values(f"{metrics[0]}_vs_{pipeline}", key=abs).iloc[-1]
        margins = ", ".join(
            f"{m} {fmt_delta(m, best[f'{m}_vs_{pipeline}'], stats[m]['mean'])}" for m in metrics
        )
        line += f"; largest {metrics[0]} margin: {best['trial_id']} ({margins})"
    return line


def headline(analysis: Analysis) -> list[str]:
    """The few lines `tune-app analyze` prints: counts, front, knee, dominance."""
    exp = analysis.experiment
    name = exp.space.get("name", exp.path.name)
    lines = [
        f"{name}: {len(exp.table)} trials, {len(analysis.done)} complete "
        f"({len(analysis.mix)} MixTraining); {left_out_text(analysis)}"
    ]
    if analysis.mix.empty:
        lines.append("No complete MixTraining trial: there is no Pareto front to report.")
        return lines
    idle = int(analysis.mix["no_mix_epoch"].sum())
    if idle:
        lines.append(
            f"{idle} of the {len(analysis.mix)} MixTraining trials had no MIX epoch "
            "(rho * min(epochs_ssl, epochs_sl) < 1): "
            "they trained exactly as SSL+SL does"
        )
    lines += choice_lines(analysis)
    if analysis.verdict is not None:  # only seed-confirmed claims make the headline
        lines += headline_lines(analysis.verdict)
    return lines


def choice_lines(analysis: Analysis) -> list[str]:
    """The front and knee, over configurations (or single runs, with a warning)."""
    exp, knee = analysis.experiment, analysis.knee_config
    if knee is None:
        return []
    front = analysis.front_configs
    seeds = ", ".join(str(s) for s in knee["seeds"])
    scores = config_scores(knee, exp.metrics)
    if analysis.basis == BY_RUN:
        return [
            f"Pareto front: {len(front)} single run(s); knee trial {knee['trial_ids'][0]} "
            f"(configuration {knee['config_id']}, seed {seeds}: {scores})",
            f"Single runs: {SINGLE_RUN_WARNING}",
        ]
    lines = [
        f"Pareto front: {len(front)} configuration(s) over {BASIS_TEXT[analysis.basis]}; "
        f"knee {knee['config_id']} ({scores}; seeds {seeds})"
    ]
    configs = analysis.verdict.configs if analysis.verdict is not None else front
    single = int(((configs["pipeline"] == MIX) & ~configs["confirmed"]).sum())
    if analysis.basis == BY_CONFIG and single:
        lines.append(
            f"{single} single-seed configuration(s) are shown but not chosen from "
            "(`tune-app export --include-unconfirmed` lets them in)"
        )
    return lines


def searched_section(analysis: Analysis) -> list[str]:
    exp, space = analysis.experiment, analysis.experiment.space
    search, base = space.get("search") or {}, space.get("baselines") or {}
    fixed = ", ".join(f"{k}={v}" for k, v in (space.get("trainer") or {}).items())
    return [
        "## What was searched",
        "",
        f"- Experiment: `{exp.path}` (trials read from {exp.source})",
        f"- Space: `{space.get('name')}`: {space.get('description', '')}",
        f"- Fixed settings: {fixed or '(defaults)'}",
        "- Searched: " + "; ".join(param_text(n, s) for n, s in space["parameters"].items()),
        *steps_note(space),
        "- Objectives: "
        + ", ".join(f"{g} `{m}`" for m, g in zip(exp.metrics, exp.goals, strict=True)),
        f"- Sampler: {search.get('sampler')}, {search.get('num_samples')} MixTraining samples, "
        f"seed {search.get('seed')}; baselines {base.get('pipelines')} x seeds {base.get('seeds')}",
        f"- Trials: {len(exp.table)}, {len(analysis.done)} complete; {left_out_text(analysis)}",
        "",
    ] + left_out_table(analysis)


def steps_note(space: dict) -> list[str]:
    """A continuous `rho` range at fixed epochs is drawn as its e_mix steps (the searcher is
    told so; the dry-run lists the values): say so beside the range space.yaml records."""
    rho, trainer = (space.get("parameters") or {}).get("rho") or {}, space.get("trainer") or {}
    # The continuous kinds of search_spaces.schema.CONTINUOUS (analysis imports none of ours).
    continuous = rho.get("distribution") in ("uniform", "log_uniform_values", "q_uniform")
    if not continuous or not {"epochs_ssl", "epochs_sl"} <= set(trainer):
        return []
    m = min(int(trainer["epochs_ssl"]), int(trainer["epochs_sl"]))
    if m == 0:
        return []  # no MIX epoch whatever rho: nothing is searched in steps
    return [
        f"- `rho` was drawn as one value per e_mix = floor(rho * {m}) step of that range "
        "(`tune-app search --dry-run` lists them under `steps`; searches before this rule drew "
        "it continuously: see the `rho` values in trials.parquet)"
    ]


def left_out_table(analysis: Analysis) -> list[str]:
    if analysis.left_out.empty:
        return []
    rows = [
        [
            r["trial_id"],
            r["pipeline"],
            r["status"],
            r["reason"],
            epochs_text(r),
            (last_line(r["error"]) or "")[:160],
        ]
        for _, r in analysis.left_out.iterrows()
    ]
    headers = ["trial", "pipeline", "status", "left out because", "epochs", "error"]
    note = "Only complete trials (every planned epoch, no error) are in the front and statistics."
    return [note, "", md_table(headers, rows), ""]


def front_section(analysis: Analysis) -> list[str]:
    """The chosen front: one row per configuration, its seeds' means ± std."""
    exp = analysis.experiment
    lines = ["## Pareto front", ""]
    if analysis.front_configs.empty:
        return lines + ["No complete MixTraining trial, so no front.", ""]
    won = analysis.verdict.confirmed_dominance if analysis.verdict is not None else {}
    compare = [p for p in COMPARED if p in analysis.baselines]
    shown = list(dict.fromkeys([*exp.metrics, "test_accuracy"]))
    headers = ["config", "trials", *exp.knobs, "seeds", *shown]
    headers += [f"confirmed to dominate {PIPELINE_NAMES[p]}" for p in compare] + ["knee"]
    rows = []
    for _, c in analysis.front_configs.iterrows():
        cells = [c["config_id"], ", ".join(c["trial_ids"])]
        cells += [*(fmt_value(k, c[k]) for k in exp.knobs), ", ".join(map(str, c["seeds"]))]
        cells += [mean_text(c, m) for m in shown]
        cells += [
            yes_no(c["config_id"] in won.get(p, [])) if c["n"] > 1 else "single run"
            for p in compare
        ]
        cells += ["*" if c["knee"] else ""]
        rows.append(cells)
    note = (
        f"Chosen over {BASIS_TEXT[analysis.basis]}: values are means ± sample std over seeds. "
        f"Knee (*): {KNEE_RULE}. Test accuracy is shown, never used to choose."
    )
    return lines + [md_table(headers, rows), "", note, ""]


def versus_section(analysis: Analysis, pipeline: str) -> list[str]:
    """Which trials beat one baseline's mean on every objective, and by how much."""
    name, metrics = PIPELINE_NAMES.get(pipeline, pipeline), analysis.experiment.metrics
    stats = analysis.baselines[pipeline]
    winners = beats(analysis, pipeline)
    lines = [f"### {name}", "", beat_line(analysis, pipeline) + " (single runs, no claim).", ""]
    if winners.empty:
        return lines
    rows = [
        [r["trial_id"], yes_no(r["on_front"])]
        + [fmt_delta(m, r[f"{m}_vs_{pipeline}"], stats[m]["mean"]) for m in metrics]
        + [yes_no(better_everywhere(analysis, r, pipeline))]
        + [yes_no(not within_noise(analysis, r, pipeline))]
        for _, r in winners.iterrows()
    ]
    headers = ["trial", "on front", *(f"{m} vs mean" for m in metrics)]
    headers += ["better on every objective", "every margin > seed std"]
    return lines + [md_table(headers, rows), ""]


def baselines_section(analysis: Analysis) -> list[str]:
    lines = ["## Against the baselines", ""]
    if not analysis.baselines:
        return lines + ["No complete baseline trial: nothing to compare against.", ""]
    lines += [
        "A trial dominates a baseline when it is at least as good on every objective and better "
        "on one, compared with the baseline's mean over seeds.",
        "",
    ]
    for pipeline in [*COMPARED, *(p for p in analysis.baselines if p not in COMPARED)]:
        if pipeline in analysis.baselines and not analysis.mix.empty:
            lines += versus_section(analysis, pipeline)
    return lines


def noise_section(analysis: Analysis) -> list[str]:
    """How much the baselines moved between seeds: the scale any margin must beat."""
    if not analysis.baselines:
        return []
    rows = []
    for pipeline, stats in analysis.baselines.items():
        for m, s in stats.items():
            std = fmt_value(m, s["std"]) if s["std"] is not None else "n/a (one seed)"
            spread = f"{fmt_value(m, s['min'])} .. {fmt_value(m, s['max'])}"
            rows.append(
                [
                    PIPELINE_NAMES.get(pipeline, pipeline),
                    m,
                    s["n"],
                    fmt_value(m, s["mean"]),
                    std,
                    spread,
                ]
            )
    headers = ["baseline", "metric", "seeds", "mean", "std (sample)", "min .. max"]
    note = (
        "A margin smaller than the std is within seed-to-seed noise; with one seed the noise is "
        "unknown (add seeds under `baselines.seeds`)."
    )
    return ["## How noisy the baselines were", "", md_table(headers, rows), "", note, ""]


def hypervolume_section(analysis: Analysis) -> list[str]:
    if analysis.reference is None:
        return []
    exp = analysis.experiment
    ref = ", ".join(
        f"{m} {fmt_value(m, v)}" for m, v in zip(exp.metrics, analysis.reference, strict=True)
    )
    names = {"mixtraining": "MixTraining front", "baselines": "all baseline means"}
    rows = [
        [
            names.get(k, f"{PIPELINE_NAMES.get(k, k)} mean"),
            f"{v:.4g}",
            f"{analysis.hypervolume[k + '_fraction']:.3f}",
        ]
        for k, v in analysis.hypervolume.items()
        if not k.endswith("_fraction")
    ]
    return [
        "## Hypervolume",
        "",
        f"Reference point: {ref} ({REFERENCE_RULE}). The fraction divides by the box between the "
        "ideal point (best of each objective over complete trials) and the reference point.",
        "",
        md_table(["points", "hypervolume", "fraction of box"], rows),
        "",
    ]


def report_markdown(analysis: Analysis, extra: list[str] | None = None) -> str:
    """report.md: headline, what was searched, front, baselines, noise, hypervolume, files.

    `extra` (Markdown lines, e.g. the knob importance section) goes before the file list.
    """
    name = analysis.experiment.space.get("name", analysis.experiment.path.name)
    lines = [f"# Analysis of `{name}`", ""]
    lines += [f"- {line}" for line in headline(analysis)] + [""]
    lines += searched_section(analysis) + front_section(analysis)
    if analysis.verdict is not None:
        exp = analysis.experiment
        lines += verdict_section(analysis.verdict, exp.metrics, exp.knobs)
    lines += baselines_section(analysis)
    lines += noise_section(analysis) + hypervolume_section(analysis)
    lines += latency_section(analysis.done) + (extra or [])
    lines += [
        "## Files",
        "",
        "`pareto.png` and `pareto.html` (the plot; hover for each trial's knobs; the page also "
        "has the importance bars, parallel coordinates, slices and hypervolume history), "
        "`importance.png`, `parallel_coordinates.png`, `slices.png`, `hypervolume_history.png`, "
        "`pareto.parquet` (every trial of the front's configurations, keyed by trial_id), "
        "`summary.json` (every number above).",
        "",
    ]
    return "\n".join(lines)
