"""Reading a run's saved state safely: tensors and plain values only, never pickled code.

A checkpoint can come from somewhere else (a copied run folder, shared storage every Ray worker
reads). `torch.load(weights_only=True)` unpickles only tensors, containers and plain values, so
a crafted file is refused before any of its code can run.

Also: putting back, before a resume, a checkpoint Ray deleted just before its driver was killed.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

import torch

from trainers.pipeline import STATE_VERSION

# What every `Trainer.state_dict` holds; a dict without these is not one of our checkpoints.
REQUIRED_KEYS = ("version", "config", "epoch", "model", "history", "rng")
REQUIRED_TYPES = {"config": dict, "epoch": int, "model": dict, "history": list, "rng": dict}


class CheckpointError(ValueError):
    """A file that is not a loadable checkpoint of this version (corrupt, foreign, crafted)."""


def load_state(path: str | Path) -> dict[str, Any]:
    """The state dict saved at `path`, loaded on the CPU with `weights_only=True`.

    Args:
        path: a file written by `torch.save(trainer.state_dict(), ...)`.

    Returns:
        The state dict, checked to be one of this version.

    Raises:
        CheckpointError: the file is unreadable, truncated, foreign, crafted (it asks to run
            code) or written by another state version; the message names the file.
    """
    try:
        # Any failure here (zip, pickle, EOF, refused global) means the same to the user: the
        # file is not a checkpoint this program can use; the first line of the reason is kept.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised as CheckpointError with the cause
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: not a loadable checkpoint ({reason})") from e
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a tune-app checkpoint (keys missing)")
    wrong = [k for k, kind in REQUIRED_TYPES.items() if not isinstance(state[k], kind)]
    if wrong:  # right keys, wrong contents: foreign or crafted, never half-trusted
        raise CheckpointError(f"{path}: not a tune-app checkpoint (bad {', '.join(wrong)})")
    if state["version"] != STATE_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state['version']!r}; this tune-app reads "
            f"version {STATE_VERSION}"
        )
    return state


# ------------------------------------------------------------------ a checkpoint Ray deleted
# Ray keeps one checkpoint a trial (`CheckpointConfig(num_to_keep=1)`): registering epoch N+1's
# deletes epoch N's, and the experiment snapshot naming N+1's is written a moment later. A driver
# killed in between leaves a snapshot that names a deleted checkpoint; Ray can neither restore
# that trial nor, later, delete the checkpoint, and the snapshot's result.json may lack N+1's row.

SUPERSEDED = "tune_app_superseded.json"  # in a checkpoint moved back to the name Ray expects


def put_back_deleted_checkpoints(folder: str) -> list[str]:
    """Before `--resume` of the phase in `folder`: give every unfinished trial whose snapshot
    names a checkpoint that is gone the checkpoint that replaced it, under the name Ray expects.

    The replacing checkpoint is the oldest of the trial's checkpoints newer than the named one
    (Ray registered it, so it was written whole; a newer one may be half-written). It is copied
    to the named folder with a note of the named checkpoint's epoch, after which the trial
    reports its rows again from the newer state (`recorded_epoch`); result.json loses the rows
    after that epoch, and the replacing checkpoint's own folder is removed (Ray writes the
    trial's next checkpoint there).

    Returns:
        One line per such trial, for the user.
    """
    import pyarrow.fs
    from ray.tune import ExperimentAnalysis

    from analysis.load import parse_results
    from tune_app._internals import checkpoint_index, checkpoint_metrics
    from tune_app.location import has_snapshot

    if not has_snapshot(folder):  # nothing Ray can restore (`Tuner.restore` says so)
        return []
    said = []
    for trial in ExperimentAnalysis(folder).trials:
        named = trial.checkpoint
        if named is None or trial.status in ("TERMINATED", "ERROR"):  # Ray resumes neither
            continue
        fs, path = named.filesystem, named.path.rstrip("/")
        assert fs is not None  # a Checkpoint infers it from its path when not given one
        if fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
            continue
        trial_dir, name = posixpath.split(path)
        index = checkpoint_index(name)
        if index is None:  # not a name Ray gives: not ours to mend
            continue
        newer = sorted(
            (found, info.path)
            for info in fs.get_file_info(pyarrow.fs.FileSelector(trial_dir))
            if info.type == pyarrow.fs.FileType.Directory
            and (found := checkpoint_index(info.base_name)) is not None
            and found > index
        )
        if not newer:
            said.append(
                f"trial {trial.trial_id}: {name}, the checkpoint to resume from, is gone and "
                "no newer one is left; Ray cannot resume it"
            )
            continue
        source = newer[0][1]
        # Ray restores the trial as of the named checkpoint (its iteration count too): the rows
        # after that epoch go, and the trial reports them again from the newer state.
        recorded = int(checkpoint_metrics(trial).get("epoch") or 0)
        results = f"{trial_dir}/result.json"
        if fs.get_file_info(results).type == pyarrow.fs.FileType.File:
            with fs.open_input_stream(results) as f:
                rows = parse_results(f.read().decode())
            kept = [row for row in rows if int(row.get("epoch") or 0) <= recorded]
            if len(kept) < len(rows):  # written beside, then moved over: never half a file
                with fs.open_output_stream(f"{results}.put-back") as f:
                    f.write("".join(json.dumps(row) + "\n" for row in kept).encode())
                fs.move(f"{results}.put-back", results)
        # Built beside the named folder, then renamed: a driver killed meanwhile leaves the
        # named checkpoint missing, and the next resume does all this again.
        building = f"{path}.put-back"
        if fs.get_file_info(building).type != pyarrow.fs.FileType.NotFound:
            fs.delete_dir(building)
        fs.create_dir(building, recursive=True)  # pyarrow copies files into folders that exist
        pyarrow.fs.copy_files(source, building, source_filesystem=fs, destination_filesystem=fs)
        with fs.open_output_stream(f"{building}/{SUPERSEDED}") as f:
            f.write(json.dumps({"recorded_epoch": recorded, "from": source}).encode())
        if isinstance(fs, pyarrow.fs.LocalFileSystem):
            fs.move(building, path)  # one rename
        else:  # object stores move files, not folders
            pyarrow.fs.copy_files(building, path, source_filesystem=fs, destination_filesystem=fs)
            fs.delete_dir(building)
        fs.delete_dir(source)
        said.append(
            f"trial {trial.trial_id}: Ray had replaced {name} when the driver stopped; resuming "
            f"from {posixpath.basename(source)}, reporting again the epochs after {recorded}"
        )
    return said


def recorded_epoch(checkpoint_dir: str | Path) -> int | None:
    """The epoch after which the trial reports its rows again, for a checkpoint
    `put_back_deleted_checkpoints` moved back; None for one Ray restores as it wrote it."""
    note = Path(checkpoint_dir) / SUPERSEDED
    if not note.is_file():
        return None
    return int(json.loads(note.read_text())["recorded_epoch"])
