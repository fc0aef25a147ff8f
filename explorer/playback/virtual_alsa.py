"""Virtual ALSA outputs for machines without a sound card (CI, servers, containers).

PortAudio's ALSA backend reads the ALSA configuration when it initialises. We write a small
configuration file into a temporary folder and point `ALSA_CONFIG_PATH` at the system
`alsa.conf` followed by it, so the user's `~/.asoundrc` is never touched. It defines:

- `default` and `explorer_null`: ALSA's `null` plugin, which discards samples. It is not paced:
  it accepts blocks as fast as the callback produces them (about 100x real time), which makes
  tests of the delivered samples fast.
- `explorer_failing` (optional): writes into a pipe to `head -c BYTES`; when `head` exits, the
  next write fails, as when a USB interface is unplugged mid-play.
- `explorer_paced` (optional): writes into a pipe to a small reader process that consumes
  `period` frames every `period / rate` seconds, like a sound card's clock, and counts the
  periods it found empty (underruns). The null plugin never reports an underrun, so the
  benchmark uses this device to measure them.

Call `use_virtual_alsa()` before the first `import sounddevice` or the engine is created; if
PortAudio is already initialised it is re-initialised (only while no stream is open).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SYSTEM_CONFIGS = ("/usr/share/alsa/alsa.conf", "/usr/local/share/alsa/alsa.conf")
NULL_DEVICE = "explorer_null"
FAILING_DEVICE = "explorer_failing"
PACED_DEVICE = "explorer_paced"

PACED_READER = r"""
import fcntl, json, os, sys, time
rate, frame_bytes, period, pipe_bytes, report = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
descriptor = sys.stdin.fileno()
os.set_blocking(descriptor, False)
wanted = period * frame_bytes
shrunk = pipe_bytes <= 0
started = None
ticks = starved = consumed = 0
def write_report():
    with open(report + ".tmp", "w") as handle:
        json.dump({"ticks": ticks, "starved": starved, "frames": consumed // frame_bytes, "pipe_shrunk": shrunk}, handle)
    os.replace(report + ".tmp", report)
while True:
    if started is not None:
        delay = started + ticks * period / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    got, closed = 0, False
    while got < wanted:
        try:
            data = os.read(descriptor, wanted - got)
        except BlockingIOError:
            if started is None:
                time.sleep(0.0005)
                continue
            break
        if not data:
            closed = True
            break
        got += len(data)
        if started is None:
            started = time.perf_counter()
    if closed:
        break
    if not shrunk:
        try:
            fcntl.fcntl(descriptor, 1031, pipe_bytes)  # F_SETPIPE_SZ: a small device buffer
            shrunk = True
        except OSError:
            pass
    consumed += got
    if got < wanted:
        starved += 1
    ticks += 1
    if ticks % 50 == 0:
        write_report()
write_report()
"""


@dataclass(frozen=True)
class PacedDevice:
    """Settings of the paced virtual device. `report` is the JSON file its reader rewrites
    every 50 periods and at the end: `{"ticks", "starved", "frames", "pipe_shrunk"}`.
    `pipe_bytes` is the pipe's size once shrunk (the device buffer it models; 4096 is the
    smallest Linux allows: 512 stereo float32 frames)."""

    sample_rate: int
    report: Path
    channels: int = 2
    period: int = 256
    pipe_bytes: int = 4096

    def read_report(self) -> dict:
        return json.loads(self.report.read_text()) if self.report.exists() else {}


def use_virtual_alsa(
    failing_after_bytes: int | None = None,
    paced: PacedDevice | None = None,
    folder: Path | None = None,
) -> Path:
    """Make `default` the ALSA null device (plus the optional failing and paced devices).

    Returns the configuration file written. Safe to call again with other options.
    """
    folder = Path(folder or tempfile.mkdtemp(prefix="explorer-alsa-"))
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["pcm.!default { type null }", f"pcm.{NULL_DEVICE} {{ type null }}"]
    if failing_after_bytes is not None:
        command = f"|head -c {int(failing_after_bytes)} >/dev/null"
        lines.append(_file_pcm(FAILING_DEVICE, command))
    if paced is not None:
        reader = folder / "paced_reader.py"
        reader.write_text(PACED_READER)
        frame_bytes = 4 * paced.channels  # PortAudio hands float32 to the null plugin
        command = (
            f"|{sys.executable} {reader} {paced.sample_rate} {frame_bytes} {paced.period} "
            f"{paced.pipe_bytes} {paced.report}"
        )
        lines.append(_file_pcm(PACED_DEVICE, command))
    config = folder / "asound.conf"
    config.write_text("\n".join(lines) + "\n")
    system = [path for path in SYSTEM_CONFIGS if Path(path).exists()][:1]
    os.environ["ALSA_CONFIG_PATH"] = ":".join([*system, str(config)])
    _reinitialise_portaudio()
    return config


def _file_pcm(name: str, command: str) -> str:
    quoted = command.replace('"', '\\"')
    return f'pcm.{name} {{ type file slave.pcm "null" file "{quoted}" format "raw" }}'


def _reinitialise_portaudio() -> None:
    sounddevice = sys.modules.get("sounddevice")
    if sounddevice is not None:
        sounddevice._terminate()
        sounddevice._initialize()
