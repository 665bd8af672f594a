"""How good the progress display's ETA was: predicted end against the real end of a search.

Reads the plain progress lines a search writes to stderr when it is not a terminal
(`tune-app search --space vit_mix.yaml 2> search.log`): each finished trial's line carries its
wall-clock time and the ETA at that moment. For the moments when 10%, 50% and 90% of the trials
had finished, it prints the predicted end (time + ETA) against the real end (the last trial's
line), as an error in seconds, as a share of the whole search, and as a share of the time that
was still left.

    python -m benchmarks.eta_accuracy search.log
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

STAMP = re.compile(r"^\[(\d\d):(\d\d):(\d\d)\] ")
ETA = re.compile(r"\| ETA (?:(\d+):)?(\d+):(\d\d) ")
ELAPSED = re.compile(r"elapsed (?:(\d+):)?(\d+):(\d\d)")
FRACTIONS = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Finished:
    at: float  # seconds since midnight of the log's first day
    eta: float | None  # the ETA printed on that line (None: not known yet)


def seconds(groups: tuple[str | None, ...]) -> float:
    h, m, s = (int(g) if g else 0 for g in groups)
    return 3600.0 * h + 60.0 * m + s


def parse(lines: list[str]) -> tuple[float | None, list[Finished]]:
    """(search start, finished-trial lines in order); times unwrap past midnight."""
    start, finished, last, day = None, [], -1.0, 0.0
    for line in lines:
        stamp = STAMP.match(line)
        if not stamp:
            continue
        at = seconds(stamp.groups()) + day
        if at < last:  # the clock passed midnight
            day += 86400.0
            at += 86400.0
        last = at
        elapsed = ELAPSED.search(line)
        if start is None and elapsed:
            start = at - seconds(elapsed.groups())
        if " finished: " in line or ") failed " in line:
            eta = ETA.search(line)
            finished.append(Finished(at, seconds(eta.groups()) if eta else None))
    return start, finished


def accuracy(start: float, finished: list[Finished]) -> list[dict[str, float | None]]:
    """One row per fraction: trials done, predicted and real end, errors."""
    end, rows = finished[-1].at, []
    for fraction in FRACTIONS:
        k = next(i for i, f in enumerate(finished) if (i + 1) / len(finished) >= fraction)
        f = finished[k]
        predicted = None if f.eta is None else f.at + f.eta
        error = None if predicted is None else predicted - end
        rows.append(
            {
                "fraction": fraction,
                "trials_done": k + 1,
                "elapsed_s": f.at - start,
                "predicted_total_s": None if predicted is None else predicted - start,
                "real_total_s": end - start,
                "error_s": error,
                "error_of_total": None if error is None else error / (end - start),
                "error_of_left": None if error is None or end == f.at else error / (end - f.at),
            }
        )
    return rows


def table(rows: list[dict[str, float | None]], trials: int) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:+.1%}"

    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    out = [
        f"{trials} trials",
        "| trials done | at (s) | predicted total (s) | real total (s) | error (s) | "
        "of the whole search | of the time left |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        out.append(
            f"| {r['trials_done']} ({r['fraction']:.0%}) | {secs(r['elapsed_s'])} | "
            f"{secs(r['predicted_total_s'])} | {secs(r['real_total_s'])} | {secs(r['error_s'])} | "
            f"{pct(r['error_of_total'])} | {pct(r['error_of_left'])} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="a search's stderr, written when not a terminal")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        print(f"eta_accuracy: {args.log}: no such file", file=sys.stderr)
        return 2
    start, finished = parse(args.log.read_text(encoding="utf-8", errors="replace").splitlines())
    if start is None or not finished:
        print(f"eta_accuracy: {args.log}: no progress lines (was it a terminal?)", file=sys.stderr)
        return 2
    print(table(accuracy(start, finished), len(finished)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
