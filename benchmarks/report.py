"""Shared by the benchmark scripts: print a table and record it in docs/benchmarks.md.

Each script owns one section of docs/benchmarks.md between `<!-- BEGIN name -->` and
`<!-- END name -->`, rewritten with the table, the command that produced it and the machine.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {cpus} CPUs{gpu}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def record(name: str, title: str, body: str) -> None:
    """Print `body` and replace section `name` of docs/benchmarks.md with it."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)  # `python -m benchmarks.x` is how these run
    target = ["-m", spec.name] if spec else [os.path.relpath(sys.argv[0])]
    command = "python " + shlex.join([*target, *sys.argv[1:]])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (
        f"<!-- BEGIN {name} -->\n## {title}\n\nCommand: `{command}` ({stamp}; {machine()})"
        f"\n\n{body.strip()}\n<!-- END {name} -->"
    )
    print(section)
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nEvery number here was produced by the command above it.\n"
    )
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)
