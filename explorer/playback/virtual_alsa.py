"""Virtual ALSA outputs for machines without a sound card (CI, servers, containers).

PortAudio's ALSA backend reads the ALSA configuration when it initialises. We write a small
configuration file into a temporary folder and point `ALSA_CONFIG_PATH` at the system
`alsa.conf` followed by it, so the user's `~/.asoundrc` is never touched. It defines:

- `default` and `explorer_null`: ALSA's `null` plugin, which discards samples. It is not paced:
  it accepts blocks as fast as the callback produces them (about 100x real time), which makes
  tests of the delivered samples fast.
- `explorer_failing` (optional): writes into a pipe to `head -c BYTES`; when `head` exits, the
  next write fails, as when a USB interface is unplugged mid-play.
- `explorer_stalling` (optional): writes into a pipe that nobody reads; once it is full the
  device hangs (the callback is no longer called), as some drivers do on unplug. After
  `STALL_SECONDS` the pipe breaks, so the hung stream ends and nothing is left behind.
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
STALLING_DEVICE = "explorer_stalling"
PACED_DEVICE = "explorer_paced"
STALL_SECONDS = 6

PACED_READER = r"""
import fcntl, json, os, sys, time
rate, frame_bytes, period, pipe_bytes, report = sys.argv[1:6]
rate, frame_bytes, period, pipe_bytes = int(rate), int(frame_bytes), int(period), int(pipe_bytes)
try:  # a sound card's clock does not wait for the CPU: run this reader at real-time priority
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(40))
    realtime = True
except (AttributeError, OSError):
    realtime = False
descriptor = sys.stdin.fileno()
os.set_blocking(descriptor, False)
wanted = period * frame_bytes
ticks = starved = consumed = 0
latest = 0.0
shrunk = False


def read(limit):
    try:
        return os.read(descriptor, limit)
    except BlockingIOError:
        return None


def write_report():
    result = {"ticks": ticks, "starved": starved, "frames": consumed // frame_bytes,
              "pipe_bytes": pipe_bytes if shrunk else None, "realtime": realtime,
              "latest_wakeup_ms": 1000 * latest}
    with open(report + ".tmp", "w") as handle:
        json.dump(result, handle)
    os.replace(report + ".tmp", report)


while (data := read(65536)) is None:  # wait for the stream to start
    time.sleep(0.0005)
consumed += len(data)
for attempt in range(1000):  # empty the pipe, then shrink it to the device buffer modelled
    while data := read(65536):
        consumed += len(data)
    if data == b"":
        break
    try:
        fcntl.fcntl(descriptor, 1031, pipe_bytes)  # F_SETPIPE_SZ
        shrunk = True
        break
    except OSError:
        time.sleep(0.0002)
started = time.perf_counter()
closed = False
while not closed:
    deadline = started + (ticks + 1) * period / rate
    delay = deadline - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    latest = max(latest, time.perf_counter() - deadline)
    got = 0
    while got < wanted:
        data = read(wanted - got)
        if not data:
            closed = data == b""
            break
        got += len(data)
    consumed += got
    ticks += 1
    if got < wanted and not closed:
        starved += 1
    if ticks % 100 == 0:
        write_report()
write_report()
"""


@dataclass(frozen=True)
class PacedDevice:
    """Settings of the paced virtual device. `report` is the JSON file its reader rewrites
    every 100 periods and at the end: `{"ticks", "starved", "frames", "pipe_bytes" (None when
    the pipe could not be shrunk), "realtime", "latest_wakeup_ms"}`.
    `pipe_bytes` is the pipe's size once shrunk: the device buffer it models (a power of two,
    at least 4096, the smallest Linux allows: 512 stereo float32 frames)."""

    sample_rate: int
    report: Path
    channels: int = 2
    period: int = 256
    pipe_bytes: int = 16384  # 2048 frames: 35 to 46 ms of slack, like PortAudio's 'high'

    def read_report(self) -> dict:
        return json.loads(self.report.read_text()) if self.report.exists() else {}


def use_virtual_alsa(
    failing_after_bytes: int | None = None,
    paced: PacedDevice | None = None,
    stalling: bool = False,
    folder: Path | None = None,
) -> Path:
    """Make `default` the ALSA null device (plus the optional failing, stalling and paced
    devices).

    Returns the configuration file written. Safe to call again with other options.
    """
    folder = Path(folder or tempfile.mkdtemp(prefix="explorer-alsa-"))
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["pcm.!default { type null }", f"pcm.{NULL_DEVICE} {{ type null }}"]
    if failing_after_bytes is not None:
        command = f"|head -c {int(failing_after_bytes)} >/dev/null"
        lines.append(_file_pcm(FAILING_DEVICE, command))
    if stalling:
        # Reads nothing; exits when the writer hangs up (PortAudio probing the device) or
        # after STALL_SECONDS, which breaks the pipe so the hung stream can end.
        wait = f"import select; p = select.poll(); p.register(0, 0); p.poll({STALL_SECONDS * 1000})"
        lines.append(_file_pcm(STALLING_DEVICE, f"|exec {sys.executable} -c '{wait}'"))
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
