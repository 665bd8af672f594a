"""Reading W&B's local run files (`run-<id>.wandb`) without a network or a W&B server.

The file is a 7-byte header (`:W&B`, magic, version) followed by LevelDB-log framing (32 KiB
blocks; each chunk: crc32c u32, length u16, type u8 = FULL 1 | FIRST 2 | MIDDLE 3 | LAST 4) of
`wandb_internal_pb2.Record` messages. wandb 0.31 ships no Python reader (its core is in Go).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune_app._internals import wandb_record_class

_HEADER, _BLOCK, _CHUNK_HEADER = 7, 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """The protobuf Records of one run file, in order."""
    from google.protobuf.message import DecodeError

    record_class = wandb_record_class()

    data = Path(path).read_bytes()
    if len(data) < _HEADER and b":W&B".startswith(data[:4]):
        return  # created, then cut before its header was whole (a kill): it holds no record
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    pos, pending = _HEADER, b""
    while pos + _CHUNK_HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        if pos + _CHUNK_HEADER + length > len(data):
            return  # a record still being written (or cut by a kill): the file ends here
        chunk = data[pos + _CHUNK_HEADER : pos + _CHUNK_HEADER + length]
        pos += _CHUNK_HEADER + length
        if kind == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = record_class()
            try:
                record.ParseFromString(pending)
            except DecodeError:
                return  # a torn tail: keep what was read before it
            yield record


def _items(update: Any) -> dict[str, Any]:
    """Items as a dict; nested keys (`["trials", "_type"]`) become nested dicts, as in W&B."""
    out: dict[str, Any] = {}
    for item in update:
        *parents, leaf = [item.key] if item.key else list(item.nested_key)
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = json.loads(item.value_json)
    return out


@dataclass
class RunFile:
    """What one run file holds: identity, config, per-step history, the final summary."""

    run_id: str = ""
    project: str = ""
    entity: str = ""
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    finished: bool = False  # the file holds the run's exit record: W&B wrote all of it


def read_run(path: Path) -> RunFile:
    run = RunFile()
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name, run.group = r.run.run_id, r.run.display_name, r.run.run_group
            run.project, run.entity = r.run.project, r.run.entity
            run.tags = list(r.run.tags)
            run.config.update(_items(r.run.config.update))
        elif kind == "config":
            run.config.update(_items(r.config.update))
        elif kind == "history":
            run.history.append(_items(r.history.item))
        elif kind == "summary":
            run.summary.update(_items(r.summary.update))
        elif kind == "exit":
            run.finished = True
    return run


def run_files(wandb_dir: Path, run_id: str | None = None) -> list[Path]:
    """Run files under `<experiment>/wandb/`, all or those of one run id (any session)."""
    pattern = f"*-{run_id}/run-{run_id}.wandb" if run_id else "*/run-*.wandb"
    return sorted(Path(wandb_dir).glob(pattern))


def logged_epochs(wandb_dir: Path, run_id: str) -> int:
    """The highest `epoch` any local file of this run has logged (0 if none)."""
    epochs = [
        row.get("epoch", 0) for f in run_files(wandb_dir, run_id) for row in read_run(f).history
    ]
    return int(max(epochs, default=0))
