"""An on-disk cache of per-track arrays (decoded audio, front-end features), as `.npy` files
opened as read-only memory maps.

An entry is a folder `<root>/<key>/` holding `part<i>.npy` and `meta.json`. The key hashes the
source file's resolved path, size and modification time (so an edited or re-downloaded file
misses) together with a JSON description of what was computed from it (the front-end config, the
feature function, a format version). Entries are written into a temporary folder beside the
final one and renamed into place, so a crash or a concurrent writer (another rank, another
DataLoader worker) never leaves a half-written entry: the first rename wins, the loser's copy
is discarded. Nothing here is unpickled: `np.load(..., allow_pickle=False)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import InputError

FORMAT = 1


def default_root() -> Path:
    """`$EXPLORER_CACHE`, else `$XDG_CACHE_HOME/separation-explorer`, else `~/.cache/...`."""
    if os.environ.get("EXPLORER_CACHE"):
        return Path(os.environ["EXPLORER_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "separation-explorer"


def file_identity(path: str | Path) -> dict[str, Any]:
    """What makes a source file the same file: resolved path, size, mtime (ns)."""
    path = Path(path)
    try:
        status = path.stat()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    identity: dict[str, Any] = {"size": status.st_size, "mtime_ns": status.st_mtime_ns}
    if path.is_dir():
        # A track folder: its files, so a missing or replaced stem changes the key.
        identity["files"] = {
            child.name: [child.stat().st_size, child.stat().st_mtime_ns]
            for child in sorted(path.iterdir())
            if child.is_file() and not child.name.startswith(".")
        }
    identity["path"] = str(path.resolve())
    return identity


def cache_key(path: str | Path, description: dict[str, Any]) -> str:
    """A stable hex key for (source file, what was computed from it)."""
    text = json.dumps(
        {"format": FORMAT, "source": file_identity(path), "computed": description},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ArrayCache:
    """`get(key, compute)` -> the arrays of an entry as read-only memory maps, computing and
    storing them first on a miss. `compute() -> (arrays, meta dict)`."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.hits = 0
        self.misses = 0

    def folder(self, key: str) -> Path:
        return self.root / key

    def contains(self, key: str) -> bool:
        return (self.folder(key) / "meta.json").is_file()

    def meta(self, key: str) -> dict[str, Any]:
        try:
            return json.loads((self.folder(key) / "meta.json").read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"unreadable cache entry {self.folder(key)}: {error}") from None

    def get(
        self,
        key: str,
        compute: Callable[[], tuple[Sequence[np.ndarray], dict[str, Any]]],
    ) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
        if self.contains(key):
            self.hits += 1
        else:
            self.misses += 1
            arrays, meta = compute()
            self.store(key, arrays, meta)
        return self.open(key), self.meta(key)

    def open(self, key: str) -> tuple[np.ndarray, ...]:
        """The entry's arrays as read-only memory maps (no data is read until indexed)."""
        meta = self.meta(key)
        folder = self.folder(key)
        try:
            return tuple(
                np.load(folder / f"part{index}.npy", mmap_mode="r", allow_pickle=False)
                for index in range(int(meta["parts"]))
            )
        except (OSError, ValueError, KeyError) as error:
            raise InputError(
                f"corrupt cache entry {folder} ({error}); delete it to rebuild"
            ) from None

    def store(self, key: str, arrays: Sequence[np.ndarray], meta: dict[str, Any]) -> Path:
        """Write an entry atomically (temporary folder, then one rename)."""
        final = self.folder(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            temporary = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        except OSError as error:
            raise InputError(
                f"cannot write the cache {self.root}: {error.strerror or error}"
            ) from None
        try:
            for index, array in enumerate(arrays):
                np.save(temporary / f"part{index}.npy", np.ascontiguousarray(array))
            record = dict(meta, parts=len(arrays))
            (temporary / "meta.json").write_text(json.dumps(record, sort_keys=True))
            os.rename(temporary, final)
        except OSError:
            # Another process stored the same entry first (or the disk failed: then the
            # entry is still missing and the next `open` says so).
            shutil.rmtree(temporary, ignore_errors=True)
            if not self.contains(key):
                raise
        return final
