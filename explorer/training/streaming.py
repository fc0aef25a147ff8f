"""Streaming training data: lazily read datasets over an on-disk cache, DataLoader workers, and
memory that does not grow with the number of tracks.

- `ExcerptDataset`: a map-style torch Dataset over `(track, offset)` excerpts of a MUSDB18
  (`.stem.mp4`) or MUSDB18-HQ (`.wav`/`.flac` folders) root. Lengths come from the headers; a
  track is decoded (resampled, optionally mono) the first time one of its excerpts is read and
  stored in the cache, keyed by file and rate; excerpts are then sliced from memory maps.
- `FrameDataset`: the examples of a frame-based family (the per-track `features(track)` arrays of
  the DAE or DRDNN tasks), cached on disk per track, keyed by file and front-end config. Index
  `i` maps to `(track, row)`; `__getitems__` gathers a whole batch at once.
- `StreamingTask`: wraps such a family's training task for the generic loop (`explorer train
  --stream`). Every epoch is a `DataLoader` with worker processes over a `FrameDataset`, driven
  by torch's `DistributedSampler` (shuffled per epoch with `set_epoch`, one shard per rank; one
  rank is the single-process case), each rank taking `batch_size / world_size` examples of each
  global batch. The normaliser fit and the validation read the cache one track at a time.

Both datasets keep at most `max_open` tracks' memory maps open per process (an LRU), and no
track's samples stay in Python memory, so memory is bounded by the batch, not the dataset.
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from explorer.audio.io import audio_info
from explorer.data.sources import TrackReference, list_dataset
from explorer.data.track import Track
from explorer.errors import InputError
from explorer.progress import Job, Progress
from explorer.training.cache import ArrayCache, cache_key
from explorer.training.data import TrackSource
from explorer.training.frames import ExamplePool
from explorer.training.loop import TaskWrapper

FEATURES_VERSION = 1
MAX_OPEN = 16
DEFAULT_WORKERS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`explorer train` options for streaming data."""
    parser.add_argument(
        "--stream",
        action="store_true",
        help="stream examples from an on-disk feature cache with DataLoader workers "
        "(dataset roots and track folders; frame-based models)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"DataLoader worker processes with --stream (default {DEFAULT_WORKERS}; 0: none)",
    )
    parser.add_argument(
        "--cache",
        metavar="DIR",
        help="cache folder for decoded features (default $EXPLORER_CACHE or "
        "~/.cache/separation-explorer)",
    )


# ---------------------------------------------------------------- shared pieces
class _OpenTracks:
    """An LRU of open per-track memory maps: at most `limit` tracks at once."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.entries: OrderedDict[Any, tuple[np.ndarray, ...]] = OrderedDict()

    def get(self, key: Any, opener: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        arrays = opener()
        self.entries[key] = arrays
        while len(self.entries) > self.limit:
            self.entries.popitem(last=False)
        return arrays

    def __len__(self) -> int:
        return len(self.entries)


def _as_batch(data: Any) -> Any:
    """DataLoader's collate function when the dataset already returns whole batches."""
    return data


def require_path(source: TrackSource) -> Path:
    path = getattr(source, "path", None)
    if path is None:
        raise InputError(
            f"--stream reads tracks from files; '{source.name}' is generated or cut in memory "
            "(use a dataset root or a folder of track folders, e.g. one written by 'explorer synth')"
        )
    return Path(path)


# ---------------------------------------------------------------- cached features
class CachedFeatures:
    """A family's per-track `features(track) -> arrays (examples, ...)` through the disk cache."""

    def __init__(
        self,
        features: Callable[[Track], tuple[np.ndarray, ...]],
        description: dict[str, Any],
        cache: ArrayCache,
    ):
        self.features = features
        self.description = dict(description, features_version=FEATURES_VERSION)
        self.cache = cache

    def key(self, source: TrackSource) -> str:
        return cache_key(require_path(source), self.description)

    def ensure(self, source: TrackSource) -> tuple[str, int]:
        """Compute and store the track's features if missing -> `(key, examples)`."""
        key = self.key(source)
        if not self.cache.contains(key):

            def compute() -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
                arrays = self.features(source.load())
                return arrays, {"name": source.name, "examples": len(arrays[0])}

            self.cache.get(key, compute)
        return key, int(self.cache.meta(key)["examples"])

    def arrays(self, source: TrackSource) -> tuple[np.ndarray, ...]:
        key, _count = self.ensure(source)
        return self.cache.open(key)


class CachedPool(ExamplePool):
    """An `ExamplePool` whose per-track examples come from the disk cache instead of memory:
    `track_examples` reads one track, and nothing is kept between calls."""

    def __init__(
        self, sources: Sequence[TrackSource], cached: CachedFeatures, pool_tracks: int = 8
    ):
        super().__init__(sources, cached.features, budget_bytes=0, pool_tracks=pool_tracks)
        self.cached = cached

    def track_examples(self, index: int) -> tuple[np.ndarray, ...]:
        arrays = tuple(np.array(array) for array in self.cached.arrays(self.sources[index]))
        self._counts[index] = len(arrays[0])
        return arrays

    def example_count(self) -> int:
        for index, source in enumerate(self.sources):
            if index not in self._counts:
                self._counts[index] = self.cached.ensure(source)[1]
        return sum(self._counts.values())


class FrameDataset(Dataset):
    """Examples of many tracks from cached per-track arrays; index -> `(track, row)`.

    `dataset[i]` is a tuple of rows; `__getitems__(indices)` (used by DataLoader) a tuple of
    tensors `(batch, ...)` in the order of `indices`."""

    def __init__(
        self,
        cache: ArrayCache,
        keys: Sequence[str],
        counts: Sequence[int],
        max_open: int = MAX_OPEN,
    ):
        self.root = cache.root
        self.keys = list(keys)
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.max_open = max_open
        self._open = _OpenTracks(max_open)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def open_tracks(self) -> int:
        """How many tracks' memory maps this process holds (bounded by `max_open`)."""
        return len(self._open)

    def _arrays(self, track: int) -> tuple[np.ndarray, ...]:
        return self._open.get(track, lambda: ArrayCache(self.root).open(self.keys[track]))

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"example index out of range 0..{len(self) - 1}")
        tracks = np.searchsorted(self.offsets, indices, side="right") - 1
        return tracks, indices - self.offsets[tracks]

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        (track,), (row,) = self.locate(np.asarray([index]))
        return tuple(np.array(array[row]) for array in self._arrays(int(track)))

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        indices = np.asarray(indices, dtype=np.int64)
        tracks, rows = self.locate(indices)
        outputs: list[np.ndarray] | None = None
        for track in np.unique(tracks):
            chosen = np.flatnonzero(tracks == track)
            arrays = self._arrays(int(track))
            if outputs is None:
                outputs = [np.empty((len(indices), *a.shape[1:]), a.dtype) for a in arrays]
            # Sorted rows read the memory map front to back; fancy indexing copies them out.
            order = np.argsort(rows[chosen], kind="stable")
            for output, array in zip(outputs, arrays, strict=True):
                output[chosen[order]] = array[rows[chosen][order]]
        return tuple(torch.from_numpy(output) for output in outputs or [])

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes open their own memory maps.
        state = dict(self.__dict__)
        state["_open"] = _OpenTracks(self.max_open)
        return state


# ---------------------------------------------------------------- audio excerpts
class ExcerptDataset(Dataset):
    """`(track, offset)` excerpts of `seconds` from a MUSDB18 / MUSDB18-HQ root (or any list of
    track references), hop `hop_seconds`. Item: `{signal: (channels, samples) float32}` for
    `signals` (mixture and stems; a missing stem is an InputError naming the track).

    Lengths are read from the file headers, so building the index decodes nothing; a track is
    decoded once, on first use, into the cache (keyed by file, rate and channel mode)."""

    def __init__(
        self,
        references: Sequence[TrackReference],
        seconds: float,
        hop_seconds: float | None = None,
        sample_rate: int = 44100,
        mono: bool = False,
        signals: Sequence[str] = ("mixture", "vocals"),
        cache: ArrayCache | None = None,
        max_open: int = MAX_OPEN,
    ):
        if seconds <= 0:
            raise InputError("excerpt length must be positive")
        self.references = list(references)
        self.samples = int(round(seconds * sample_rate))
        self.hop = int(round((hop_seconds or seconds) * sample_rate))
        self.sample_rate, self.mono, self.signals = sample_rate, mono, tuple(signals)
        self.cache = cache or ArrayCache()
        self.max_open = max_open
        self._open = _OpenTracks(max_open)
        lengths = [self._declared_length(reference) for reference in self.references]
        counts = [max(0, (length - self.samples) // self.hop + 1) for length in lengths]
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    @classmethod
    def from_root(
        cls, root: str | Path, subset: str | None = "train", **options: Any
    ) -> ExcerptDataset:
        return cls(list_dataset(root, subset), **options)

    def _declared_length(self, reference: TrackReference) -> int:
        path = reference.path
        if reference.kind == "folder":
            files = [
                path / f"{name}{suffix}" for name in self.signals for suffix in (".wav", ".flac")
            ]
            present = [file for file in files if file.is_file()]
            found = {file.name.rsplit(".", 1)[0] for file in present}
            missing = [name for name in self.signals if name not in found and name != "mixture"]
            if missing:
                raise InputError(
                    f"track '{reference.name}' ({path}) has no {', '.join(missing)} file"
                )
            if not present:
                raise InputError(f"track '{reference.name}' ({path}) has no audio files")
            path = present[0]
        info = audio_info(path)
        if reference.kind == "stem-mp4" and info.streams < 5:
            raise InputError(
                f"{path.name} has {info.streams} audio stream(s); a MUSDB18 .stem.mp4 has 5"
            )
        return int(info.frames * self.sample_rate // info.sample_rate)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def open_tracks(self) -> int:
        return len(self._open)

    def _key(self, reference: TrackReference) -> str:
        return cache_key(
            reference.path,
            {"audio": list(self.signals), "sample_rate": self.sample_rate, "mono": self.mono},
        )

    def _decode(self, reference: TrackReference) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
        track = reference.load().resampled(self.sample_rate)
        if self.mono:
            track = track.mono()
        track.require_stems(*(name for name in self.signals if name != "mixture"))
        return tuple(track.signal(name) for name in self.signals), {"name": reference.name}

    def _arrays(self, track: int) -> tuple[np.ndarray, ...]:
        reference = self.references[track]

        def opener() -> tuple[np.ndarray, ...]:
            arrays, _meta = self.cache.get(self._key(reference), lambda: self._decode(reference))
            return arrays

        return self._open.get(track, opener)

    def locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"excerpt index {index} out of range 0..{len(self) - 1}")
        track = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return track, int(index - self.offsets[track]) * self.hop

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        track, start = self.locate(index)
        excerpt = {}
        for name, array in zip(self.signals, self._arrays(track), strict=True):
            part = np.zeros((array.shape[0], self.samples), dtype=np.float32)
            piece = array[:, start : start + self.samples]  # decoded may be a few samples short
            part[:, : piece.shape[1]] = piece
            excerpt[name] = part
        return excerpt

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"] = _OpenTracks(self.max_open)
        return state


# ---------------------------------------------------------------- the training task wrapper
def feature_description(task: Any) -> dict[str, Any]:
    """What a task's `features` depend on: the DAE family's on its front-end only (so a sweep
    over hidden sizes shares one cache); other families on their whole model config."""
    description: dict[str, Any] = {"task": f"{type(task).__module__}.{type(task).__qualname__}"}
    frontend = getattr(task, "frontend", None)
    if type(task).__name__ == "DAETask" and frontend is not None:
        description["frontend"] = frontend.config.to_dict()
    else:
        description["model"] = task.model_config()
    return description


class StreamingTask(TaskWrapper):
    """A frame-based family's task (it has `features`, `train_pool`, `validation_pool`) whose
    training batches stream from the disk cache through DataLoader workers. `sharded`: the
    batches are already this rank's share (see `explorer.training.distributed`)."""

    sharded = True

    def __init__(
        self,
        task: Any,
        cache: ArrayCache,
        workers: int = DEFAULT_WORKERS,
        rank: int = 0,
        world_size: int = 1,
        agree: Callable[[str | None], None] | None = None,
        max_open: int = MAX_OPEN,
    ):
        if not all(hasattr(task, name) for name in ("features", "train_pool", "validation_pool")):
            raise InputError(
                f"--stream supports frame-based models (dae, mss-dae, sf, drdnn, ...), not {task.kind}"
            )
        if workers < 0:
            raise InputError("--workers must be 0 or more")
        self.task = task
        self.kind, self.data_description = task.kind, task.data_description
        self.cache, self.workers, self.max_open = cache, workers, max_open
        self.rank, self.world_size = rank, world_size
        self.agree = agree or (lambda error: None)
        cached = CachedFeatures(task.features, feature_description(task), cache)
        self.cached = cached
        task.train_pool = CachedPool(task.train_pool.sources, cached, task.train_pool.pool_tracks)
        task.validation_pool = CachedPool(
            task.validation_pool.sources, cached, task.validation_pool.pool_tracks
        )
        for source in (*task.train_pool.sources, *task.validation_pool.sources):
            require_path(source)
        self._dataset: FrameDataset | None = None
        self._loader: DataLoader | None = None
        self._loader_key: tuple[int, int] | None = None

    def warm(self) -> Job[None]:
        """Fill the cache: rank r computes tracks r, r + W, ...; then every rank agrees (a
        failure on any rank is reported on all of them, naming it)."""
        sources = [*self.task.train_pool.sources, *self.task.validation_pool.sources]
        mine = sources[self.rank :: self.world_size]
        error = None
        try:
            for index, source in enumerate(mine):
                self.cached.ensure(source)
                yield Progress(index + 1, len(mine), f"caching features {index + 1}/{len(mine)}")
        except InputError as failure:
            error = str(failure)
        self.agree(error)
        if error is not None:
            raise InputError(error)

    def prepare(self) -> Job[None]:
        yield from self.warm()
        yield from self.task.prepare()

    def dataset(self) -> FrameDataset:
        if self._dataset is None:
            for _progress in self.warm():
                pass
            pool = self.task.train_pool
            keys, counts = zip(
                *(self.cached.ensure(source) for source in pool.sources), strict=True
            )
            self._dataset = FrameDataset(self.cache, keys, counts, self.max_open)
        return self._dataset

    def examples_per_epoch(self) -> int:
        return len(self.dataset())

    def loader(self, seed: int, epoch: int, batch_size: int) -> DataLoader:
        """The DataLoader for this epoch. It is built once per (seed, batch size) with
        persistent workers, and each epoch re-seeds its sampler (`set_epoch`), so worker
        processes start once per run, not once per epoch."""
        if batch_size % self.world_size:
            raise InputError(
                f"batch size {batch_size} is not divisible by the world size {self.world_size}"
            )
        if self._loader is None or self._loader_key != (seed, batch_size):
            dataset = self.dataset()
            sampler = DistributedSampler(
                dataset, self.world_size, self.rank, shuffle=True, seed=seed, drop_last=True
            )
            batches = BatchSampler(sampler, batch_size // self.world_size, drop_last=False)
            self._loader = DataLoader(
                dataset,
                batch_sampler=batches,
                num_workers=self.workers,
                collate_fn=_as_batch,
                pin_memory=torch.cuda.is_available(),
                prefetch_factor=4 if self.workers else None,
                persistent_workers=self.workers > 0,
            )
            self._loader_key = (seed, batch_size)
        self._loader.batch_sampler.sampler.set_epoch(epoch)
        return self._loader

    def train_batches(self, seed: int, epoch: int, batch_size: int) -> Iterator[tuple]:
        yield from self.loader(seed, epoch, batch_size)

    def validation_batches(self) -> Iterator[tuple]:
        return self.task.validation_batches()

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.task.loss(batch)
