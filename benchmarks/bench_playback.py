"""Playback engine: callback cost per block, underruns under CPU load, edit-to-audible latency.

Runs on virtual ALSA devices (`explorer.playback.virtual_alsa`), so it needs no sound card:

- the null device is not paced (it takes blocks as fast as they come), which measures the
  whole cost of one callback round trip through PortAudio;
- the paced device is a reader process that consumes 256 frames every 256 / 44100 s, like a
  sound card's clock, at real-time priority, through a pipe shrunk to 16 KiB (2048 frames:
  the writer blocks until 512 frames fit, so 35 to 46 ms of slack, about the 35 ms buffer
  PortAudio reports for its default "high" latency). It counts the periods it found empty:
  underruns as a real card would have them, and how late its own clock woke up. (ALSA's null plugin never
  reports an underrun to PortAudio, so PortAudio's status flags are reported too, but they
  cannot fire there.)

Every figure is a fraction of a block's duration or a time in milliseconds, measured in this
run; nothing is compared with another machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

RATE = 44100
STEMS = ("vocals", "drums", "bass", "other", "piano")
BLOCK_SIZES = (256, 512, 1024)
LOAD_SECONDS = float(os.environ.get("BENCH_PLAYBACK_SECONDS", 60))  # as the issue asks
SHORT_LOAD_SECONDS = LOAD_SECONDS / 3  # the comparison runs
STARTUP_SECONDS = 1.0
EDITS = 40
TITLE = "Playback engine"


def material(seconds: float, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Five stereo noise stems and their sum; the content does not change the cost."""
    generator = np.random.default_rng(seed)
    frames = round(seconds * RATE)
    stems = {
        name: (0.05 * generator.standard_normal((2, frames))).astype(np.float32) for name in STEMS
    }
    return sum(stems.values()), stems


def progress(message: str) -> None:
    print(f"  playback: {message}", file=sys.stderr, flush=True)


def percentiles(values: np.ndarray) -> tuple[float, float, float]:
    return float(np.median(values)), float(np.percentile(values, 99)), float(values.max())


def callback_cost(engine_type, mixture, stems) -> str:
    """Engine render time per block, called directly (steady and cross-fading blocks), and the
    whole round trip through PortAudio on the unpaced null device."""
    rows = [
        "| block (frames) | block duration (ms) | render, steady: median / p99 / max (% of block) "
        "| render, cross-fade block: median / p99 / max (%) | full callback round trip via "
        "PortAudio, mean (%) |",
        "|---|---|---|---|---|",
    ]
    for blocksize in BLOCK_SIZES:
        progress(f"callback cost, block {blocksize}")
        engine = engine_type(device="explorer_null", blocksize=blocksize)
        engine.load(mixture, RATE, stems)
        engine.set_loop_frames(0, mixture.shape[1])
        engine.mixer.set_gain("drums", 0.7)
        engine._ensure_stream()  # allocate the callback's buffers without starting it
        outdata = np.zeros((blocksize, 2), dtype=np.float32)
        duration = blocksize / RATE
        steady = _time_blocks(engine, outdata, blocksize, 3000, change=None)
        fading = _time_blocks(engine, outdata, blocksize, 1000, change=engine.mixer)
        round_trip = _round_trip(engine)
        engine.close()
        steady_text = " / ".join(f"{100 * value / duration:.2f}" for value in percentiles(steady))
        fading_text = " / ".join(f"{100 * value / duration:.2f}" for value in percentiles(fading))
        rows.append(
            f"| {blocksize} | {1000 * duration:.1f} | {steady_text} | {fading_text} "
            f"| {100 * round_trip / duration:.2f} |"
        )
    return "\n".join(rows)


def _time_blocks(engine, outdata, blocksize, count, change) -> np.ndarray:
    times = np.empty(count)
    engine._reset_voice(0)
    engine._state = "playing"  # as the stream would be; nothing else runs the callback here
    for index in range(count):
        if change is not None:  # a new plan every block: each block cross-fades
            while engine._fade_from is not None:
                engine._render_block(outdata, blocksize)
            change.set_gain("bass", 0.5 + 0.5 * (index % 2))
        started = time.perf_counter()
        engine._render_block(outdata, blocksize)
        times[index] = time.perf_counter() - started
    engine._state = "stopped"
    return times


def _round_trip(engine) -> float:
    """Seconds per block when PortAudio calls the callback as fast as the null device allows:
    render plus sounddevice's wrapper plus PortAudio and ALSA."""
    engine.play()
    time.sleep(0.2)
    blocks, started = engine.clock.blocks, time.perf_counter()
    time.sleep(1.0)
    blocks, elapsed = engine.clock.blocks - blocks, time.perf_counter() - started
    engine.pause()
    return elapsed / max(1, blocks)


class MatmulLoad:
    """The stand-in for NCA or training: torch matmuls in a loop on another thread (none for
    size 0: the control run)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.stop = threading.Event()
        self.operations = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        generator = torch.Generator().manual_seed(0)
        left = torch.randn(self.size, self.size, generator=generator)
        right = torch.randn(self.size, self.size, generator=generator)
        while not self.stop.is_set():
            left = torch.tanh(left @ right)
            self.operations += 1

    def __enter__(self) -> MatmulLoad:
        self.started = time.perf_counter()
        if self.size:
            self.thread.start()
        return self

    def __exit__(self, *exception: object) -> None:
        self.stop.set()
        if self.size:
            self.thread.join()
        self.elapsed = time.perf_counter() - self.started

    def gflops(self) -> float:
        return 2 * self.size**3 * self.operations / self.elapsed / 1e9


def instrument(engine) -> dict[str, np.ndarray | int]:
    """Wrap the engine's per-block render to record its duration and the gap between calls
    (benchmark-only: preallocated arrays, no allocation per block beyond floats)."""
    record = {"durations": np.zeros(200_000), "gaps": np.zeros(200_000), "count": 0, "last": 0.0}
    render = engine._render_block

    def timed(outdata, frames):
        started = time.perf_counter()
        try:
            render(outdata, frames)
        finally:
            count = record["count"]
            if count < record["durations"].shape[0]:
                record["durations"][count] = time.perf_counter() - started
                record["gaps"][count] = started - record["last"] if record["last"] else 0.0
                record["count"] = count + 1
            record["last"] = started

    engine._render_block = timed
    return record


def underruns(engine_type, paced, mixture, stems, seconds, load_size, realtime) -> list[str]:
    blocksize = 512
    progress(f"underruns, {seconds:.0f} s, load {load_size}, real-time {realtime}")
    engine = engine_type(device="explorer_paced", blocksize=blocksize, realtime_priority=realtime)
    engine.load(mixture, RATE, stems)
    engine.set_loop_frames(0, mixture.shape[1])
    record = instrument(engine)
    machine_load = os.getloadavg()[0]
    with MatmulLoad(load_size) as load:
        engine.play()
        time.sleep(seconds)
        engine.pause()
    engine.close()
    time.sleep(0.3)  # the reader writes its final report when the pipe closes
    report = paced.read_report()
    count = record["count"]
    skip = round(STARTUP_SECONDS * RATE / blocksize)  # PortAudio fills the buffer at start
    durations, gaps = record["durations"][:count], record["gaps"][skip:count]
    block = blocksize / RATE
    priority = {True: "real-time", False: "normal", None: "normal"}[engine.realtime]
    work = f"{load_size}x{load_size} matmul, {load.gflops():.1f} GFLOP/s" if load_size else "none"
    return [
        f"{seconds:.0f} s",
        work,
        f"{machine_load:.1f}",
        priority,
        f"{engine.underruns}",
        f"**{report.get('starved', 'n/a')}** of {report.get('ticks', 'n/a')}",
        f"{1000 * np.median(durations):.2f} / {1000 * np.percentile(durations, 99):.2f} / "
        f"{1000 * durations.max():.2f} ({100 * durations.max() / block:.0f}%)",
        f"{1000 * gaps.max() if gaps.size else float('nan'):.1f}",
        f"{report.get('latest_wakeup_ms', float('nan')):.1f}",
        f"{engine.last_error or 'none'}",
    ]


def edit_latency(engine_type, mixture, stems) -> str:
    """From "new samples ready" to "first changed sample handed to the device", on the paced
    device, for a 0.5 s mask-edit range around the playhead of a 3-minute, 5-stem track."""
    rows = [
        "| block (frames) | block (ms) | output latency reported (ms) | replace_range cost "
        "(copy + publish), median (ms) | ready -> handed to device: median / max (ms) "
        "| target: block + latency (ms) | ready -> audible, max (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    generator = np.random.default_rng(1)
    for blocksize in BLOCK_SIZES:
        progress(f"edit latency, block {blocksize}")
        engine = engine_type(device="explorer_paced", blocksize=blocksize)
        engine.load(mixture, RATE, stems)
        engine.set_loop_frames(0, mixture.shape[1])
        engine.play()
        time.sleep(0.3)
        costs, handed = [], []
        for _ in range(EDITS):
            start = max(0, engine.position_frames() - RATE // 10)
            new = (0.05 * generator.standard_normal((2, RATE // 2))).astype(np.float32)
            ready = time.perf_counter()
            engine.mixer.replace_range("vocals", start, new)
            costs.append(time.perf_counter() - ready)
            published = engine.mixer.plan.published_at
            deadline = time.perf_counter() + 1.0
            while engine.last_swap_published_at != published and time.perf_counter() < deadline:
                time.sleep(0.0002)
            handed.append(engine.last_swap_delivered_at - ready)
            time.sleep(0.02 + 0.03 * generator.random())  # edits land at random block phases
        latency = engine.output_latency
        engine.pause()
        engine.close()
        handed_ms = 1000 * np.array(handed)
        block_ms = 1000 * blocksize / RATE
        rows.append(
            f"| {blocksize} | {block_ms:.1f} | {1000 * latency:.1f} | {1000 * np.median(costs):.2f} "
            f"| {np.median(handed_ms):.1f} / {handed_ms.max():.1f} | {block_ms + 1000 * latency:.1f} "
            f"| {handed_ms.max() + 1000 * latency:.1f} |"
        )
    return "\n".join(rows)


def run() -> str:
    from explorer.playback.virtual_alsa import PacedDevice, use_virtual_alsa

    folder = Path(tempfile.mkdtemp(prefix="bench-playback-"))
    paced = PacedDevice(sample_rate=RATE, report=folder / "paced.json", period=256)
    use_virtual_alsa(paced=paced, folder=folder)
    from explorer.playback.engine import PlaybackEngine

    short_mixture, short_stems = material(30.0)
    long_mixture, long_stems = material(180.0, seed=2)
    sections = [
        "Five stereo stems at 44.1 kHz, on virtual ALSA devices (no sound card here): "
        "`explorer_null` discards blocks as fast as they come; `explorer_paced` consumes them "
        "at the real rate and counts underruns (see the module docstring).",
        "### Callback cost per block (5 stems)",
        "Render time of one block (`_render_block`, the whole per-block work of the engine) "
        "as a share of the block's duration; a cross-fade block renders two voices. The round "
        "trip adds sounddevice's wrapper, PortAudio and ALSA, measured as wall time per block "
        "while the unpaced null device calls the callback back to back.",
        callback_cost(PlaybackEngine, short_mixture, short_stems),
    ]
    header = (
        "| played | load in another thread | machine load average at start | audio thread "
        "priority | PortAudio underflow flags | paced device: empty periods (underruns) "
        "| render per block: median / p99 / max, ms (max as % of block) "
        "| longest gap between callbacks, ms | virtual sound card's latest wake-up, ms | error |"
        "\n|---|---|---|---|---|---|---|---|---|---|"
    )
    runs = [
        (LOAD_SECONDS, 1024, True),
        (SHORT_LOAD_SECONDS, 0, True),
        (SHORT_LOAD_SECONDS, 64, True),
        (SHORT_LOAD_SECONDS, 1024, False),
    ]
    rows = [
        underruns(PlaybackEngine, paced, short_mixture, short_stems, seconds, size, realtime)
        for seconds, size, realtime in runs
    ]
    sections += [
        "### Underruns under CPU load",
        f"Material looped; block 512, latency 'high'. torch uses {torch.get_num_threads()} "
        "threads. The 64x64 load makes many more Python calls a second, so it holds the GIL "
        "more, as a Python-heavy training loop would. The engine's default runs the audio "
        "thread at real-time priority (stepped back down if the device turns out unpaced); "
        "the last row turns that off for comparison; the second runs no load thread at all (the machine alone). The load "
        "average counts every process on this machine, not only this benchmark. A wake-up "
        "of the virtual sound card (itself at real-time priority) that is late by tens of "
        "ms means the machine could not honour real-time priority at that moment.",
        header + "\n" + "\n".join("| " + " | ".join(row) + " |" for row in rows),
        "### Latency from a finished mask edit to audible change",
        f"{EDITS} edits per block size, each replacing 0.5 s of one stem of a 3-minute track "
        "around the playhead. Ready = the new samples exist; handed = the end of the callback "
        "that first renders them (the engine's `last_swap_delivered_at`); audible = handed + "
        "the output latency the stream reports.",
        edit_latency(PlaybackEngine, long_mixture, long_stems),
    ]
    return "\n\n".join(sections)
