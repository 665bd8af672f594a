"""Every file the code and docs point at exists in this repository.

Three kinds of reference are checked in every .py, .md and .toml file: relative Markdown links,
paths under the repository's own folders (`docs/install.md`, `trainers/runtime.py`, ...), and
bare upper-case Markdown names (`GUIDE.md`), which always mean a file at the root.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {"__pycache__", "experiments", "runs", "build"}
FOLDERS = ("docs", "tune_app", "search_spaces", "trainers", "analysis", "tests", "benchmarks")
FOLDERS += ("scripts", "configs")

MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
# A repository path: one of our folders at the start of a path (not inside `<exp>/analysis/...`).
REPO_PATH = re.compile(
    r"(?<![\w./<>$-])((?:" + "|".join(FOLDERS) + r")/[\w./-]*\.(?:py|md|yaml|toml|sh|txt))\b"
)
ROOT_MD = re.compile(r"(?<![\w.-])([A-Z][A-Z_]*\.md)\b")  # other/GUIDE.md counts too


def _files() -> list[Path]:
    out = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        hidden = any(p.startswith(".") or p in SKIP_DIRS for p in rel.parts[:-1])
        if path.suffix in (".py", ".md", ".toml") and path.is_file() and not hidden:
            out.append(path)
    return sorted(out)


def dangling(path: Path, text: str) -> list[str]:
    """The references in `text` (the contents of `path`) that name no existing file."""
    missing = []
    if path.suffix == ".md":
        for target in MD_LINK.findall(text):
            target = target.split("#", 1)[0]
            if target and not re.match(r"[a-z][a-z+.-]*:", target):  # not http:, mailto:, ...
                if not (path.parent / target).exists():
                    missing.append(target)
    missing += [p for p in REPO_PATH.findall(text) if not (ROOT / p).exists()]
    missing += [n for n in ROOT_MD.findall(text) if not (ROOT / n).exists()]
    return list(dict.fromkeys(missing))  # a link can also match as a path: report it once


def test_the_scan_sees_the_repository() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _files()}
    assert {"README.md", "pyproject.toml", "docs/architecture.md", "trainers/config.py"} <= names
    assert not any(n.startswith(".venv/") for n in names)


CASES = [
    ("x.md", "see [the guide](docs/nope.md#layers), [web](https://x.org/a.md)", ["docs/nope.md"]),
    ("x.md", "see [install](docs/install.md) and [top](#top)", []),
    ("x.py", '"""See DESIGN.md, other/GUIDE.md."""', ["DESIGN.md", "GUIDE.md"]),
    ("x.toml", "# see docs/missing.md for the pair", ["docs/missing.md"]),
    ("x.py", "# measured by benchmarks/throughput.py, see docs/benchmarks.md", []),
    ("x.md", "writes `<exp>/analysis/report.md` and `README.md`", []),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES)
def test_the_checker_finds_what_it_should(name: str, text: str, expected: list[str]) -> None:
    assert dangling(ROOT / name, text) == expected


def test_no_reference_to_a_file_that_does_not_exist() -> None:
    found = {}
    for path in _files():
        if path == Path(__file__).resolve():
            continue  # its examples of dangling references are on purpose
        missing = dangling(path, path.read_text(encoding="utf-8"))
        if missing:
            found[path.relative_to(ROOT).as_posix()] = missing
    assert not found, f"references to files this repository does not have: {found}"
