"""One driver per experiment and per run folder, checked with real second processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import SPACE, TINY_RUN
from tune_app.claim import ClaimHeld, claim, lock_path
from tune_app.cli import main
from tune_app.settings import UserInputError

# Takes the claim on argv[1] (after waiting for argv[2] to exist, if given), says what happened
# on stdout, then holds the claim until killed.
HOLDER = """
import os, sys, time
from pathlib import Path
from tune_app.claim import ClaimHeld, claim
if len(sys.argv) > 2:
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
try:
    with claim(Path(sys.argv[1]), "experiment"):
        print("won", flush=True)
        time.sleep(300)
except ClaimHeld:
    print("held", flush=True)
"""


def start_holder(folder: Path, *gate: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, "-c", HOLDER, str(folder), *map(str, gate)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A live process holding the claim on tmp_path/store/same."""
    folder = tmp_path / "store" / "same"
    proc = start_holder(folder)
    assert proc.stdout.readline().strip() == "won"
    yield proc, folder
    proc.kill()
    proc.wait()


def named_holder(err: str, proc: subprocess.Popen) -> bool:
    return f"pid {proc.pid} on {socket.gethostname()} since " in err


def write_space(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return str(path)


def test_a_second_search_with_the_same_name_exits_2_naming_the_holder(
    tmp_path: Path, holder, capsys
) -> None:
    proc, folder = holder
    args = ["search", "--space", write_space(tmp_path), "--storage-path", str(folder.parent)]
    assert main([*args, "--name", "same", "--wandb", "disabled"]) == 2
    err = capsys.readouterr().err
    assert named_holder(err, proc) and "experiment" in err and str(folder) in err
    assert not folder.exists()  # the refused driver wrote nothing


def test_resume_while_the_first_driver_lives_exits_2(tmp_path: Path, holder, capsys) -> None:
    proc, folder = holder
    folder.mkdir()
    (folder / "space.yaml").write_text(yaml.safe_dump(SPACE))
    args = ["search", "--name", "same", "--storage-path", str(folder.parent), "--resume"]
    assert main(args) == 2
    assert named_holder(capsys.readouterr().err, proc)


def test_a_second_train_into_the_same_out_exits_2(tmp_path: Path, holder, capsys) -> None:
    proc, folder = holder
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(TINY_RUN))
    assert main(["train", "--config", str(cfg), "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert named_holder(err, proc) and "run folder" in err
    assert not folder.exists()


def test_every_spelling_of_a_folder_has_one_lock(tmp_path: Path, monkeypatch) -> None:
    """`--out .`, a relative and an absolute path to the same folder: one claim, not three."""
    folder = tmp_path / "run"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert lock_path(Path(".")) == lock_path(folder) == lock_path(Path("../run"))
    with claim(Path("."), "run folder"), pytest.raises(ClaimHeld):
        with claim(folder, "run folder"):
            pass


def test_a_lock_left_by_a_dead_process_does_not_block(tmp_path: Path) -> None:
    folder = tmp_path / "store" / "same"
    proc = start_holder(folder)
    assert proc.stdout.readline().strip() == "won"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_path(folder).exists()  # killed: it could not clean up, the kernel dropped the lock
    with claim(folder, "experiment") as path:
        assert f'"pid": {os.getpid()}' in path.read_text()
    assert not lock_path(folder).exists()  # a clean release removes the file


def test_two_drivers_starting_together_get_one_claim(tmp_path: Path) -> None:
    folder, gate = tmp_path / "store" / "same", tmp_path / "go"
    procs = [start_holder(folder, gate) for _ in range(3)]
    gate.touch()
    outcomes = sorted(p.stdout.readline().strip() for p in procs)
    for p in procs:
        p.kill()
        p.wait()
    assert outcomes == ["held", "held", "won"]


def test_the_claim_is_released_for_the_next_driver(tmp_path: Path) -> None:
    folder = tmp_path / "same"
    with claim(folder, "experiment"), pytest.raises(ClaimHeld):
        with claim(folder, "experiment"):  # the same process counts as a second driver too
            pass
    with claim(folder, "experiment"):
        pass


def test_a_lock_that_cannot_be_created_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="cannot claim experiment"):
        with claim(tmp_path / ("x" * 251), "experiment"):  # ".x…x.lock" > 255 bytes
            pass
