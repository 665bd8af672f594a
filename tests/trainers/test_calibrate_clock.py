"""What calibration times a step with, and what it records about the machine meanwhile."""

from __future__ import annotations

import subprocess
import sys
import time

import torch

from tests.support import TINY_RUN
from trainers import TrialConfig
from trainers.calibrate import OthersBusy, calibrate, step_clock, step_times


def test_a_one_thread_cpu_step_is_timed_by_cpu_time_others_by_the_wall_clock() -> None:
    assert step_clock(torch.device("cpu"), 1)[0] == "thread_cpu"
    assert step_clock(torch.device("cpu"), 2)[0] == "wall"
    assert step_clock(torch.device("cuda", 0), 1)[0] == "wall"


def test_the_cpu_clock_leaves_out_time_the_thread_was_not_running() -> None:
    """Waiting (here: sleeping, as when another process has the core) is not step cost."""
    name, clock = step_clock(torch.device("cpu"), 1)
    cpu = step_times(lambda: time.sleep(0.05), repeats=3, warmup=0, clock=clock)
    wall = step_times(lambda: time.sleep(0.05), repeats=3, warmup=0)
    assert min(wall) >= 0.05  # sleep's lower bound, not a speed claim
    assert max(cpu) < 0.01


def test_others_busy_sees_a_cpu_bound_neighbour() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # the interpreter has started and is spinning
        with OthersBusy() as others:
            time.sleep(1.0)
    finally:
        busy.kill()
        busy.wait()
    assert others.value is not None and others.value >= 0.5


def test_calibration_records_its_clock_and_the_neighbours_load(monkeypatch) -> None:
    """What `OthersBusy` measured around the steps is what the calibration records."""
    import trainers.calibrate

    class Measured(OthersBusy):
        def __exit__(self, *exc: object) -> None:
            self.value = 0.734  # as if other processes used 0.734 CPUs meanwhile

    monkeypatch.setattr(trainers.calibrate, "OthersBusy", Measured)
    config = TrialConfig.from_dict({**TINY_RUN, "seed": 1, "num_threads": 1})
    cal = calibrate(config, {"sl"}, steps=2, warmup=1)
    assert cal.settings["clock"] == "thread_cpu"
    assert cal.settings["others_busy_cpus"] == 0.73  # rounded to 2 places


def test_a_calibration_beside_busy_neighbours_is_warned_about() -> None:
    from trainers.calibrate import Calibration
    from tune_app.calibration import busy_warnings

    def cal(busy: float | None) -> Calibration:
        hw = {"cpu": "x", "threads": 1, "device": "cpu"}
        settings = {"clock": "thread_cpu", "others_busy_cpus": busy}
        return Calibration({"sl": 0.1}, {}, 1, 2, settings, hw, "2")

    assert busy_warnings({"quiet": cal(0.1), "old file": cal(None)}) == []
    [warning] = busy_warnings({"quiet": cal(0.1), "node type x": cal(1.2)})
    assert "1.2 CPUs" in warning and "node type x" in warning
