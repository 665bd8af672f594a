"""Where a command's CPU goes, by kind of process (Linux: reads /proc).

    python -m benchmarks.process_cpu -- pytest -q -n 4 --dist load --maxschedchunk 2

Runs the command and, once a second until it ends, reads every process's CPU time (user +
system) from `/proc/<pid>/stat`, so it also counts processes the command does not wait for
(Ray's daemons and actors, a killed driver's children). A process's CPU is what it used after
the first reading: what ran before the command is left out. A process that lives less than a
second between readings is missed, and a process's last second is not counted. Prints a table
of CPU by kind (KINDS below: the first pattern found in the command line names it) and the
share of the CPU-seconds the machine's cores had; exits with the command's exit code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

# (pattern in the command line, kind), first match wins.
KINDS = (
    ("ray::_WandbHub", "W&B hubs"),
    ("wandb-core", "W&B services"),
    ("ray::ImplicitFunc", "trial actors"),
    ("ray::trainable", "trial actors"),
    ("ray::IDLE", "Ray pooled workers (tasks, idle)"),
    ("ray::", "other Ray workers"),
    ("gcs_server", "Ray daemons"),
    ("raylet", "Ray daemons"),
    ("dashboard", "Ray daemons"),
    ("log_monitor", "Ray daemons"),
    ("monitor.py", "Ray daemons"),
    ("tune_app.cli", "tune-app drivers"),
    ("bin/tune-app", "tune-app drivers"),
    ("import sys;exec(", "pytest-xdist workers"),
    ("pytest", "pytest"),
    ("multiprocessing", "multiprocessing children"),
    ("chrom", "Chromium"),
)
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def kind(cmdline: str) -> str:
    return next((k for pattern, k in KINDS if pattern in cmdline), "other")


def read_all(proc: Path = Path("/proc")) -> dict[int, tuple[str, float]]:
    """Every process's command line (or `[name]`) and CPU seconds so far."""
    out = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended between the listing and the read
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        out[int(entry.name)] = (
            cmd.strip() or f"[{stat[stat.find('(') + 1 : stat.rfind(')')]}]",
            cpu,
        )
    return out


def sample(
    command: list[str], period_s: float = 1.0
) -> tuple[int, float, dict[int, tuple[str, float]]]:
    """Run `command`; its exit code, wall seconds, and each process's CPU used meanwhile."""
    before = {pid: cpu for pid, (_, cpu) in read_all().items()}
    used: dict[int, tuple[str, float]] = {}
    start = time.monotonic()
    child = subprocess.Popen(command)
    while True:
        ended = child.poll() is not None
        for pid, (cmd, cpu) in read_all().items():
            earlier = used.get(pid, ("", 0.0))[0]
            # a dying process's command line reads empty: keep the one read before
            used[pid] = (
                earlier if cmd.startswith("[") and earlier else cmd,
                cpu - before.get(pid, 0.0),
            )
        if ended:
            break
        time.sleep(period_s)
    used.pop(os.getpid(), None)
    return child.returncode, time.monotonic() - start, used


def table(used: dict[int, tuple[str, float]], wall_s: float, cores: int) -> str:
    cpu, count = Counter(), Counter()
    for cmd, seconds in used.values():
        if seconds > 0:
            cpu[kind(cmd)] += seconds
            count[kind(cmd)] += 1
    total = sum(cpu.values())
    lines = ["| processes | count | CPU s | share |", "| --- | --- | --- | --- |"]
    for name, seconds in cpu.most_common():
        lines.append(f"| {name} | {count[name]} | {seconds:.1f} | {seconds / total:.0%} |")
    lines.append(
        f"\n{total:.1f} CPU-seconds ({total / 60:.1f} min) in {wall_s:.1f} s of wall time "
        f"({total / (wall_s * cores):.0%} of {cores} cores)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    code, wall_s, used = sample(command)
    print(table(used, wall_s, os.cpu_count() or 1))
    return code


if __name__ == "__main__":
    sys.exit(main())
