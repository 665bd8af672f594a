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


# ----------------------------------------------------------------- sections cited by heading
# Pages cite a section by its heading: (docs/benchmarks.md, "The default search ...").
SECTION_CITE = re.compile(
    r"((?:docs/[\w-]+|README)\.md)(?:\]\([^)\s]*\))?(?:'s)?,?\s+(?:section\s+)?\"([^\"\n]+)\""
)


def headings(path: Path) -> list[str]:
    """A page's headings, and the bold labels that open a paragraph (`**Warm-up.** ...`)."""
    text = path.read_text(encoding="utf-8")
    out = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    return out + re.findall(r"^\*\*([^*\n]+)\*\*", text, re.MULTILINE)


def missing_sections(text: str) -> list[str]:
    """The (file, "heading") citations in `text` whose file has no heading containing it; a
    citation may wrap over lines (of prose or of `#` comments)."""
    out = []
    for name, quoted in SECTION_CITE.findall(re.sub(r"\n[ \t]*(?:#[ \t]*)?", " ", text)):
        target = ROOT / name
        wanted = quoted.rstrip(".,;")
        if target.exists() and not any(wanted in h for h in headings(target)):
            out.append(f'{name}, "{quoted}"')
    return out


def test_a_section_cited_by_its_heading_exists() -> None:
    assert missing_sections('(docs/benchmarks.md, "No such section")') == [
        'docs/benchmarks.md, "No such section"'
    ]
    wrapped = '(docs/benchmarks.md,\n    # "No such\n    # section")'
    assert missing_sections(wrapped) == ['docs/benchmarks.md, "No such section"']
    found = {}
    for path in _files():
        if path.suffix == ".md" or path.parts[-2] in ("tune_app", "analysis", "trainers"):
            if path == Path(__file__).resolve():
                continue
            missing = missing_sections(path.read_text(encoding="utf-8"))
            if missing:
                found[path.relative_to(ROOT).as_posix()] = missing
    assert not found, f"sections cited by a heading no page has: {found}"


# ----------------------------------------------------------------- commands the docs quote
# A command line in a ```bash / ``` block of README.md or docs/*.md: `tune-app SUB --opt ...`
# (with or without .venv/bin/), `make TARGET`, `python -m benchmarks.NAME`.
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def quoted_commands(text: str) -> list[str]:
    lines = []
    for block in FENCE.findall(text):
        joined = block.replace("\\\n", " ")
        lines += [line.strip() for line in joined.splitlines() if line.strip()]
    return lines


def bad_commands(lines: list[str]) -> list[str]:
    """The quoted command lines naming a subcommand, option, make target or module that does
    not exist."""
    import click

    from tune_app.cli import cli

    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    bad = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        for i, word in enumerate(words):
            if (word == "tune-app" or word.endswith("/tune-app")) and i + 1 < len(words):
                sub = cli.commands.get(words[i + 1])
                if sub is None and not words[i + 1].startswith("-"):
                    bad.append(line)
                elif isinstance(sub, click.Command):
                    known = {o for p in sub.params for o in p.opts + p.secondary_opts}
                    opts = {w.split("=", 1)[0] for w in words[i + 2 :] if w.startswith("--")}
                    if opts - known - {"--help"}:
                        bad.append(line)
            if word == "make" and i + 1 < len(words) and "=" not in words[i + 1]:
                if words[i + 1] not in targets:
                    bad.append(line)
            if word == "-m" and i + 1 < len(words) and words[i + 1].startswith("benchmarks."):
                module = words[i + 1].split(".", 1)[1]
                if not (ROOT / "benchmarks" / f"{module}.py").exists():
                    bad.append(line)
    return list(dict.fromkeys(bad))


def test_every_command_the_docs_quote_exists() -> None:
    fake = ["tune-app serch --space x", "tune-app search --spaec x", "make tset"]
    fake += ["python -m benchmarks.nope", "tune-app search --space vit_mix.yaml --dry-run"]
    assert bad_commands(fake) == fake[:4]
    found = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        bad = bad_commands(quoted_commands(path.read_text(encoding="utf-8")))
        if bad:
            found[path.relative_to(ROOT).as_posix()] = bad
    assert not found, f"commands quoted in the docs that do not exist: {found}"
