"""Search spaces: bundled files, round trips, overrides, trial configs and a corpus of bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from search_spaces import (
    REPORTED_METRICS,
    SAMPLERS,
    Param,
    SearchSpace,
    SpaceError,
    list_spaces,
    load_space,
)
from search_spaces import validate as validate_module
from tests.support import FIXTURES, ROOT
from trainers.config import TrialConfig
from trainers.plan import phase_plan
from tune_app.settings import load_yaml

BAD = FIXTURES / "bad_spaces"
BUNDLED = (
    "folder_vit",
    "resnet18_cifar10",
    "resnet_mix",
    "vit_mix",
    "vit_mix_accel",
    "vit_mix_crossdomain",
    "vit_mix_masked",
    "vit_mix_same",
    "vit_tiny_cifar10",
    "vit_tiny_tinyimagenet",
)
# The defect-free space every bad fixture was derived from (each changes exactly one thing).
GOOD = """
name: broken
description: A valid space with exactly one defect.
trainer: {model: vit_micro, epochs_ssl: 2, epochs_sl: 2}
parameters:
  alpha: {distribution: uniform, min: 0.1, max: 0.9}
  rho: {distribution: uniform, min: 0.0, max: 1.0}
  anneal: {values: [none, linear, cosine]}
objectives:
  - {metric: val_accuracy, goal: maximize}
  - {metric: train_latency_s, goal: minimize}
search: {sampler: tpe, num_samples: 4, max_concurrent: 2, seed: 0}
baselines: {pipelines: [sl], seeds: [0]}
resources: {cpu: 1, gpu: 0}
"""


def _write(tmp_path: Path, text: str, name: str = "space.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _extremes(param: Param) -> list[Any]:
    """What the sampler can return at the edges: min and max, or every listed value."""
    if param.distribution == "categorical":
        return list(param.values)
    if param.distribution == "constant":
        return [param.value]
    return [param.min, param.max]


def test_list_spaces_lists_every_bundled_file_with_a_one_line_description() -> None:
    listed = list_spaces()
    assert [name for name, _ in listed] == list(BUNDLED)
    yaml_files = sorted(p.stem for p in (ROOT / "search_spaces").glob("*.yaml"))
    assert yaml_files == list(BUNDLED)
    for _, description in listed:
        assert description.strip() and "\n" not in description


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_space_round_trips_through_a_written_yaml(name: str, tmp_path: Path) -> None:
    space = load_space(name)
    assert space.name == name and space.source.endswith(f"{name}.yaml")
    assert load_space(f"{name}.yaml") == space
    path = _write(tmp_path, yaml.safe_dump(space.to_dict(), sort_keys=False))
    again = load_space(path)
    assert again == space and again.source == path
    assert again.to_dict() == space.to_dict()


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_space_yields_valid_configs_at_every_edge(name: str) -> None:
    space = load_space(name)
    assert {o.metric for o in space.objectives} <= set(REPORTED_METRICS)
    assert space.sampler in SAMPLERS and space.searched
    for pname, param in space.parameters.items():
        for value in _extremes(param):
            config = space.trial_config({pname: value})
            assert getattr(config, pname) == value
    # Every parameter at its minimum (first value) together, then at its maximum (last value).
    for pick in (0, -1):
        sampled = {n: _extremes(p)[pick] for n, p in space.searched.items()}
        assert isinstance(space.trial_config(sampled), TrialConfig)
    for pipeline in space.baseline_pipelines:
        assert space.trial_config({}, pipeline=pipeline, seed=1).pipeline == pipeline


def test_vit_mix_same_is_the_cpu_default_config_with_a_shorter_budget() -> None:
    space = load_space("vit_mix_same")
    default = load_yaml((ROOT / "configs" / "vit_micro_fashion_mnist.yaml").read_text())
    shared = ("model", "dataset", "labeled_fraction", "ssl_source", "batch_size", "lr_ssl", "lr_sl")
    assert {k: space.trainer[k] for k in shared} == {k: default[k] for k in shared}
    assert (space.trainer["epochs_ssl"], space.trainer["epochs_sl"]) == (4, 4)
    assert set(space.parameters) == {"alpha", "rho", "lam", "anneal"}
    assert space.parameters["anneal"].values == ("none", "linear", "cosine")
    assert [(o.metric, o.goal) for o in space.objectives] == [
        ("val_accuracy", "maximize"),
        ("calibrated_latency_s", "minimize"),
    ]
    assert (space.sampler, space.num_samples, space.max_concurrent, space.seed) == ("tpe", 12, 2, 0)
    assert space.baseline_pipelines == ("sl", "ssl_sl") and space.baseline_seeds == (0, 1, 2)
    assert (space.confirm_top_k, space.confirm_seeds) == (3, (1, 2))  # the baselines' seeds
    assert (space.cpu, space.gpu) == (1, 0)


def test_vit_mix_is_vit_mix_same_in_the_semi_supervised_regime() -> None:
    """The default changes the data regime and nothing else: fewer labels, SSL on the labelled
    and a share of the unlabelled images, each seed's SSL prefix shared, SSL+SL started first.
    `lam` then acts (it blends unlabelled images into MIX batches), so no knob is inert."""
    from analysis.importance import inert_knobs

    new, old = load_space("vit_mix"), load_space("vit_mix_same")
    changed = {k for k in {*new.trainer, *old.trainer} if new.trainer.get(k) != old.trainer.get(k)}
    assert changed == {"labeled_fraction", "ssl_source", "unlabeled_fraction", "ssl_schedule"}
    assert (new.trainer["ssl_source"], new.trainer["ssl_schedule"]) == ("all", "budget")
    assert 0 < new.trainer["unlabeled_fraction"] <= 1
    assert new.trainer["labeled_fraction"] < old.trainer["labeled_fraction"]
    assert new.parameters == old.parameters and new.objectives == old.objectives
    assert new.baseline_pipelines == ("ssl_sl", "sl") and new.baseline_seeds == (0, 1, 2)
    search = ("sampler", "num_samples", "max_concurrent", "seed", "confirm_top_k", "confirm_seeds")
    assert {k: getattr(new, k) for k in search} == {k: getattr(old, k) for k in search}
    assert inert_knobs(list(new.parameters), {}, new.trainer) == {}
    assert set(inert_knobs(list(old.parameters), {}, old.trainer)) == {"lam"}


def test_other_bundled_spaces_differ_from_vit_mix_where_they_should() -> None:
    assert load_space("resnet_mix").trial_config({}).lr_ssl == 1e-4  # null = paper ResNet rate
    cross = load_space("vit_mix_crossdomain")
    assert cross.trainer["ssl_source"] == "digits" and "lam" in cross.searched
    for name in ("vit_tiny_cifar10", "vit_tiny_tinyimagenet", "resnet18_cifar10"):
        space = load_space(name)
        assert space.trainer["data_dir"] is None and space.trainer["batch_size"] == 256
        assert (space.cpu, space.gpu, space.num_samples, space.max_concurrent) == (4, 0.25, 48, 8)
        if name != "vit_tiny_tinyimagenet":  # that one sets the paper's TinyImageNet recipe
            assert "lr_ssl" not in space.trainer and "lr_sl" not in space.trainer


@pytest.mark.parametrize(
    ("rho", "epochs", "expected"),
    [
        # A continuous range is searched as one value per e_mix step (rho_steps).
        ("{distribution: uniform, min: 0.0, max: 1.0}", (4, 4), (0.25, 1 / 5)),
        ("{distribution: uniform, min: 0.0, max: 0.5}", (6, 4), (0.25, 1 / 3)),
        ("{distribution: uniform, min: 0.25, max: 1.0}", (4, 4), None),
        ("{distribution: uniform, min: 0.1, max: 0.2}", (3, 3), (1 / 3, 1.0)),
        ("{distribution: log_uniform_values, min: 0.01, max: 1.0}", (10, 10), (0.1, 1 / 11)),
        ("{values: [0.0, 0.2, 0.3, 0.34, 1.0]}", (3, 3), (1 / 3, 0.6)),
        ("{value: 0.0}", (4, 4), (0.25, 1.0)),
        ("{value: 0.5}", (4, 4), None),
    ],
)
def test_no_mix_share_is_the_share_of_rho_draws_without_a_mix_epoch(
    tmp_path: Path, rho: str, epochs: tuple[int, int], expected: tuple | None
) -> None:
    text = GOOD.replace("{distribution: uniform, min: 0.0, max: 1.0}", rho).replace(
        "epochs_ssl: 2, epochs_sl: 2", f"epochs_ssl: {epochs[0]}, epochs_sl: {epochs[1]}"
    )
    space = load_space(_write(tmp_path, text))
    found = space.no_mix_share()
    if expected is None:
        assert found is None
        return
    assert found == pytest.approx(expected)
    # The same share by brute force: a continuous range offers each distinct e_mix once (a
    # fine grid over the range finds them all); a list offers each of its values.
    param, m = space.parameters["rho"], min(epochs)
    if param.distribution in ("uniform", "log_uniform_values"):
        grid = np.linspace(param.min, param.max, 20_001)
        steps = sorted({phase_plan(m, m, float(r))[1][1] for r in grid})
        share = (steps[0] == 0) / len(steps)
    else:
        draws = list(param.values) or [param.value]
        share = sum(phase_plan(m, m, float(r))[1][1] == 0 for r in draws) / len(draws)
    assert share == pytest.approx(expected[1], abs=0.01)


def test_searched_epochs_or_no_ssl_epochs_have_no_share(tmp_path: Path) -> None:
    searched = GOOD.replace("epochs_sl: 2", "batch_size: 64").replace(
        "  anneal:", "  epochs_sl: {distribution: int_uniform, min: 1, max: 4}\n  anneal:"
    )
    assert load_space(_write(tmp_path, searched)).no_mix_share() is None
    no_ssl = GOOD.replace("epochs_ssl: 2", "epochs_ssl: 0")
    assert load_space(_write(tmp_path, no_ssl, "b.yaml")).no_mix_share() is None


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_spaces_spend_almost_every_trial_on_mixtraining(name: str) -> None:
    found = load_space(name).no_mix_share()
    assert found is None or found[1] <= 0.01  # paper scale: rho < 0.01 of 100 epochs


def test_missing_sections_take_their_defaults(tmp_path: Path) -> None:
    text = """
parameters: {rho: {distribution: uniform, min: 0, max: 1}}
objectives: [{metric: val_accuracy, goal: maximize}]
"""
    space = load_space(_write(tmp_path, text, "minimal.yaml"))
    assert (space.name, space.description, space.trainer) == ("minimal", "", {})
    assert (space.sampler, space.num_samples, space.max_concurrent, space.seed) == ("tpe", 12, 2, 0)
    assert space.baseline_pipelines == ("sl", "ssl_sl") and space.baseline_seeds == (0,)
    assert (space.cpu, space.gpu, space.wandb) == (1, 0, {})
    assert space.parameters["rho"] == Param("rho", "uniform", min=0.0, max=1.0)


def test_every_distribution_and_the_wandb_block_round_trip(tmp_path: Path) -> None:
    text = """
name: all_kinds
trainer: {model: vit_micro}
parameters:
  lr_sl: {distribution: log_uniform_values, min: 1e-4, max: 1e-2}
  epochs_ssl: {distribution: int_uniform, min: 0, max: 3}
  lam: {distribution: q_uniform, min: 0.2, max: 1.0, q: 0.1}
  anneal: {values: [none, cosine]}
  betas: {value: [0.9, 0.99]}
objectives: [{metric: train_gflops, goal: minimize}]
baselines: {pipelines: [], seeds: []}
wandb: {project: mix, entity: lab, group: g1, tags: [cpu, test]}
"""
    space = load_space(_write(tmp_path, text))
    assert space.parameters["lr_sl"] == Param("lr_sl", "log_uniform_values", min=1e-4, max=1e-2)
    assert space.parameters["epochs_ssl"] == Param("epochs_ssl", "int_uniform", min=0, max=3)
    assert space.parameters["lam"].q == 0.1 and space.constants == {"betas": [0.9, 0.99]}
    assert set(space.searched) == {"lr_sl", "epochs_ssl", "lam", "anneal"}
    assert space.baseline_pipelines == () and space.baseline_seeds == ()
    assert space.wandb == {
        "project": "mix",
        "entity": "lab",
        "group": "g1",
        "tags": ["cpu", "test"],
    }
    assert space.trial_config({"epochs_ssl": 3}).betas == (0.9, 0.99)
    again = load_space(_write(tmp_path, yaml.safe_dump(space.to_dict()), "again.yaml"))
    assert again == space


def test_dotted_overrides_apply_before_validation(tmp_path: Path) -> None:
    overrides = {"trainer.epochs_sl": 3, "search.num_samples": 4, "parameters.rho.max": 0.5}
    space = load_space("vit_mix", overrides)
    assert space.trainer["epochs_sl"] == 3 and space.num_samples == 4
    assert space.parameters["rho"].max == 0.5
    assert load_space("vit_mix").num_samples == 12  # the bundled file is untouched
    bare = _write(
        tmp_path,
        "parameters: {rho: {values: [0.0, 0.5]}}\nobjectives: "
        "[{metric: val_accuracy, goal: maximize}]\n",
    )
    space = load_space(
        bare, {"trainer.epochs_sl": 2, "search.seed": 7, "objectives.0.goal": "minimize"}
    )
    assert space.trainer == {"epochs_sl": 2} and space.seed == 7
    assert space.objectives[0].goal == "minimize"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"searh.num_samples": 4}, "override 'searh.num_samples': unknown key 'searh'"),
        ({"search.num_samples": 0}, "search.num_samples: expected an integer >= 1, got 0"),
        ({"search.num_sample": 4}, "search.num_sample: unknown key"),
        ({"parameters.rho.max": 2.0}, "parameters.rho.max: rho: 2.0 is not allowed"),
        ({"trainer.epochs": 3}, "trainer.epochs: unknown setting"),
        ({"trainer.model.size": 3}, "trainer.model is 'vit_micro', not a mapping"),
        ({"baselines.pipelines.0.x": 1}, "baselines.pipelines.0 is 'ssl_sl', not a mapping"),
        ({"search..seed": 1}, "empty part in the dotted path"),
        ({"objectives.5.goal": "maximize"}, "'5' is not an index of a list of 2 items"),
    ],
)
def test_bad_overrides_fail_naming_the_file_and_the_key(overrides: dict, expected: str) -> None:
    with pytest.raises(SpaceError) as err:
        load_space("vit_mix", overrides)
    assert "vit_mix.yaml" in str(err.value) and expected in str(err.value)


def test_trial_config_sets_pipeline_and_seed() -> None:
    space = load_space("vit_mix", {"search.seed": 5})
    searched = space.trial_config({"alpha": 0.3, "rho": 0.25, "lam": 0.6, "anneal": "cosine"})
    assert (searched.pipeline, searched.seed, searched.alpha, searched.anneal) == (
        "mixtraining",
        5,
        0.3,
        "cosine",
    )
    assert searched.model == "vit_micro" and searched.epochs_sl == 4 and searched.lr_sl == 5e-3
    baseline = space.trial_config({}, pipeline="ssl_sl", seed=1)
    assert (baseline.pipeline, baseline.seed, baseline.effective_rho) == ("ssl_sl", 1, 0.0)


def test_unknown_space_lists_the_bundled_ones() -> None:
    with pytest.raises(SpaceError, match="no bundled space") as err:
        load_space("vit_max")
    assert all(name in str(err.value) for name in BUNDLED)


def test_gp_sampler_needs_scipy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, GOOD.replace("sampler: tpe", "sampler: gp"))
    assert load_space(path).sampler == "gp"  # scipy is a dependency of the dev install
    monkeypatch.setattr(validate_module, "_scipy_available", lambda: False)
    with pytest.raises(SpaceError, match="pip install scipy"):
        load_space(path)


def test_the_bad_corpus_base_is_valid(tmp_path: Path) -> None:
    assert isinstance(load_space(_write(tmp_path, GOOD)), SearchSpace)


BAD_FILES = sorted(BAD.glob("*.yaml"))


def test_the_bad_corpus_is_large_enough() -> None:
    assert len(BAD_FILES) >= 20


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_space_fails_naming_the_file_and_the_problem(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    expected = first.removeprefix("# expect: ").strip()
    with pytest.raises(SpaceError) as err:
        load_space(str(path))
    message = str(err.value)
    assert message.startswith(str(path)), message
    assert expected in message, message
