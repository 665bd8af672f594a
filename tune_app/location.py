"""Where an experiment lives: a local folder, or a pyarrow URI (s3://, gs://, file://) for Ray.

Ray Tune writes its own files wherever `--storage-path` points (an NFS folder or a URI every
node can reach). The experiment's other files (`optuna.db`, a SQLite file, cannot live on an
object store; `wandb/`, `space.yaml`, `trials.parquet`, `analysis/`) are written to a local
folder, `./experiments/<name>/` when the storage is a URI, and `space.yaml`, `trials.parquet`
and `optuna.db` are copied beside Ray's files at the end so the remote folder is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

UPLOADED = ("space.yaml", "trials.parquet", "optuna.db")


def is_uri(path: str | None) -> TypeGuard[str]:
    return path is not None and "://" in path


@dataclass(frozen=True)
class Location:
    local: Path  # the experiment's own files
    ray: str  # Ray Tune's experiment folder: str(local), or a URI

    @property
    def name(self) -> str:
        return self.local.name

    @property
    def remote(self) -> bool:
        return is_uri(self.ray)

    @property
    def ray_parent(self) -> str:
        return self.ray.rsplit("/", 1)[0]

    def ray_has(self, file: str) -> bool:
        """Whether Ray's experiment folder holds `file` (any filesystem pyarrow knows)."""
        if not self.remote:
            return (self.local / file).exists()
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(self.ray)
        return fs.get_file_info(f"{path}/{file}").type != pyarrow.fs.FileType.NotFound

    def exists(self) -> bool:
        return self.local.exists() or (self.remote and self.ray_has(""))

    def upload(self) -> None:
        """Copy our files beside Ray's when Ray's folder is remote."""
        if not self.remote:
            return
        import pyarrow.fs

        for file in UPLOADED:
            if (self.local / file).exists():
                pyarrow.fs.copy_files(str(self.local / file), f"{self.ray}/{file}")

    def download_space(self) -> Path:
        """space.yaml for --resume: the local copy, else the one uploaded beside Ray's files."""
        local = self.local / "space.yaml"
        if self.remote and not local.exists() and self.ray_has("space.yaml"):
            import pyarrow.fs

            self.local.mkdir(parents=True, exist_ok=True)
            pyarrow.fs.copy_files(f"{self.ray}/space.yaml", str(local))
        return local


def locate(storage_path: str | None, name: str) -> Location:
    if is_uri(storage_path):
        return Location(Path("experiments").resolve() / name, f"{storage_path.rstrip('/')}/{name}")
    local = Path(storage_path or "experiments").expanduser().resolve() / name
    return Location(local, str(local))
