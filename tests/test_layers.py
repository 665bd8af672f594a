"""The layers stay light where they promise to: listing spaces never starts torch or timm.

Each check runs in a fresh interpreter, because this test process has long imported torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "timm", "ray", "optuna", "wandb")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    """Run this venv's Python on this checkout (not an installed copy) and capture its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def _imported_top_level(importtime_stderr: str) -> set[str]:
    """Top-level package names from `python -X importtime` output (`... | torch.nn`)."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("module", ["search_spaces", "trainers", "trainers.config"])
def test_importing_the_light_layers_loads_no_heavy_library(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"import {module} loaded {proc.stdout.strip()}"


def test_spaces_command_lists_without_importing_torch() -> None:
    proc = _python("-X", "importtime", "-m", "tune_app.cli", "spaces")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "vit_mix " in proc.stdout  # it did list the bundled spaces
    imported = _imported_top_level(proc.stderr)
    assert "search_spaces" in imported  # the parse saw the command's own imports
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_lazy_trainers_names_still_import_and_unknown_names_fail() -> None:
    import trainers
    from trainers import NonFiniteLossError, SetupError, TrialConfig, plan_for, run
    from trainers.pipeline import run as pipeline_run

    assert run is pipeline_run and callable(plan_for) and TrialConfig.__name__ == "TrialConfig"
    assert issubclass(SetupError, Exception) and issubclass(NonFiniteLossError, Exception)
    assert set(trainers.__all__) <= set(dir(trainers)) | set(trainers._LAZY)
    with pytest.raises(AttributeError, match="no_such_name"):
        trainers.no_such_name  # noqa: B018 - the attribute access is the test
