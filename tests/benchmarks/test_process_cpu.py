"""benchmarks/process_cpu.py: a command's CPU by kind of process, read from /proc."""

from __future__ import annotations

import sys

import pytest

from benchmarks import process_cpu
from benchmarks.process_cpu import kind, main

# About 2.5 s of CPU, then exit code 3; the comment names it in its command line.
BUSY = """# process-cpu-test
import sys, time
end = time.process_time() + 2.5
while time.process_time() < end:
    pass
sys.exit(3)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_busy_child_is_counted_and_its_exit_code_passed_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process_cpu, "KINDS", (("process-cpu-test", "busy"), *process_cpu.KINDS))
    assert main(["--", sys.executable, "-c", BUSY]) == 3
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("| busy |")]
    count, seconds = int(row.split("|")[2]), float(row.split("|")[3])
    assert count == 1 and 1.4 <= seconds <= 2.7, out  # read once a second: the last may be missed


def test_kinds_follow_the_first_pattern_found() -> None:
    assert kind("ray::ImplicitFunc.train") == "trial actors"
    assert kind("ray::_WandbHub.put") == "W&B hubs"
    assert kind("ray::IDLE") == "Ray pooled workers (tasks, idle)"
    assert kind("/venv/bin/python -m tune_app.cli search --space x") == "tune-app drivers"
    assert kind("/usr/bin/true") == "other"
