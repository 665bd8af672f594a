"""Where an experiment lives: a local folder, or a pyarrow URI (s3://, gs://, file://) for Ray.

Ray Tune writes its own files wherever `--storage-path` points (an NFS folder or a URI every
node can reach). The experiment's other files (`optuna.db`, a SQLite file, cannot live on an
object store; `wandb/`, `space.yaml`, `trials.parquet`, `analysis/`) are written to a local
folder, `./experiments/<scheme>/<bucket>/<path>/<name>/` when the storage is a URI (keyed by
the whole URI, so `s3://a/x` and `s3://b/x` never share one). `space.yaml` is copied beside
Ray's files when the search starts (so `--resume` finds it from anywhere), and `space.yaml`,
`trials.parquet` and `optuna.db` at the end, so the remote folder is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard
from urllib.parse import urlsplit

from tune_app.settings import UserInputError, check_out_path

UPLOADED = ("space.yaml", "calibration.json", "trials.parquet", "optuna.db")
# The URI schemes pyarrow's filesystems (and so Ray's storage) understand.
SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


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

    def upload(self, files: tuple[str, ...] = UPLOADED) -> None:
        """Copy our files beside Ray's when Ray's folder is remote."""
        if not self.remote:
            return
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(self.ray)
        fs.create_dir(path, recursive=True)  # object stores need none; file:// and HDFS do
        for file in files:
            if (self.local / file).exists():
                pyarrow.fs.copy_files(str(self.local / file), f"{self.ray}/{file}")

    def remove(self, file: str) -> None:
        """Delete one of our files, locally and beside Ray's (a stale copy misleads readers)."""
        (self.local / file).unlink(missing_ok=True)
        if self.remote and self.ray_has(file):
            import pyarrow.fs

            fs, path = pyarrow.fs.FileSystem.from_uri(self.ray)
            fs.delete_file(f"{path}/{file}")

    def download_space(self) -> Path:
        """space.yaml for --resume: the local copy, else the one uploaded beside Ray's files."""
        local = self.local / "space.yaml"
        if self.remote and not local.exists() and self.ray_has("space.yaml"):
            import pyarrow.fs

            self.local.mkdir(parents=True, exist_ok=True)
            pyarrow.fs.copy_files(f"{self.ray}/space.yaml", str(local))
        return local


def locate(storage_path: str | None, name: str) -> Location:
    """Where experiment `name` lives under `--storage-path` (a folder, a URI, or None).

    Raises:
        UserInputError: a URI scheme pyarrow does not know, or a folder path that is (or lies
            under) a file.
    """
    if is_uri(storage_path):
        uri = storage_path.rstrip("/")
        return Location(local_folder_for(uri) / name, f"{uri}/{name}")
    root = Path(storage_path or "experiments").expanduser().resolve()
    check_out_path(root, "--storage-path", folder=True)
    local = root / name
    return Location(local, str(local))


def local_folder_for(uri: str) -> Path:
    """`./experiments/<scheme>/<bucket>/<path>`: one local folder per storage URI."""
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        raise UserInputError(
            f"--storage-path {uri}: unknown scheme {parts.scheme!r}; allowed: "
            f"{', '.join(s + '://' for s in SCHEMES)} or a local folder"
        )
    segments = [parts.netloc, *parts.path.split("/")]
    if any(s in (".", "..") for s in segments):
        raise UserInputError(f"--storage-path {uri}: '.' and '..' are not allowed in a URI")
    return Path("experiments").resolve().joinpath(parts.scheme, *[s for s in segments if s])


def study_url(experiment_dir: Path) -> str:
    """SQLAlchemy URL of the experiment's Optuna study (`<experiment>/optuna.db`)."""
    return f"sqlite:///{experiment_dir.resolve() / 'optuna.db'}"


def has_snapshot(folder: str) -> bool:
    """Whether Ray wrote an experiment snapshot in `folder` (a path or a URI).

    A phase killed before its first snapshot has nothing to restore: it counts as not
    started, and the next run starts it afresh in the same folder.
    """
    import pyarrow.fs

    if is_uri(folder):
        fs, path = pyarrow.fs.FileSystem.from_uri(folder)
    else:
        fs, path = pyarrow.fs.LocalFileSystem(), folder
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    return any(i.base_name.startswith("experiment_state-") for i in infos)
