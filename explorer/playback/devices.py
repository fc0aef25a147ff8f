"""Output devices: finding PortAudio, listing and choosing outputs, and a sample rate.

`sounddevice` is imported lazily: importing it loads the PortAudio library and raises
`OSError` when that library is missing. Every function here turns that (and "no device") into
`PlaybackUnavailable`, whose message says what is missing, so the app can run silently.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType

SAMPLE_FORMAT = "float32"

_import_lock = threading.Lock()


class PlaybackUnavailable(Exception):
    """No audio output can be opened; the message says why, in one line for the user."""


@dataclass(frozen=True)
class OutputDevice:
    """One PortAudio output device, as the device menu shows it."""

    index: int
    name: str
    host_api: str
    channels: int
    default_sample_rate: int
    default_latency: float
    is_default: bool

    def __str__(self) -> str:
        return f"{self.name} ({self.host_api})"


def load_sounddevice() -> ModuleType:
    """Import sounddevice, or raise `PlaybackUnavailable` when PortAudio cannot be loaded."""
    with _import_lock:
        try:
            import sounddevice
        except OSError as error:  # sounddevice raises OSError when libportaudio is missing
            raise PlaybackUnavailable(
                f"no audio output: the PortAudio library cannot be loaded ({error}); "
                "install libportaudio2 to hear playback"
            ) from None
        except ImportError as error:
            raise PlaybackUnavailable(
                f"no audio output: sounddevice is not installed ({error})"
            ) from None
    return sounddevice


def list_output_devices() -> list[OutputDevice]:
    """Every device with at least one output channel (empty when there is none)."""
    sounddevice = load_sounddevice()
    try:
        devices = sounddevice.query_devices()
        host_apis = sounddevice.query_hostapis()
        default_output = _default_output_index(sounddevice)
    except sounddevice.PortAudioError as error:
        raise PlaybackUnavailable(
            f"no audio output: PortAudio cannot list devices ({error})"
        ) from None
    outputs = []
    for index, device in enumerate(devices):
        if device["max_output_channels"] < 1:
            continue
        outputs.append(
            OutputDevice(
                index=index,
                name=device["name"],
                host_api=host_apis[device["hostapi"]]["name"],
                channels=int(device["max_output_channels"]),
                default_sample_rate=int(round(device["default_samplerate"])),
                default_latency=float(device["default_high_output_latency"]),
                is_default=index == default_output,
            )
        )
    return outputs


def resolve_output_device(device: int | str | None = None) -> OutputDevice:
    """The output device for an index, a name (exact, else a unique case-insensitive part of
    one), or None for the system default. Raises `PlaybackUnavailable` when there is none."""
    outputs = list_output_devices()
    if not outputs:
        raise PlaybackUnavailable("no audio output: no output device found (playback is silent)")
    if device is None:
        chosen = [output for output in outputs if output.is_default] or outputs[:1]
        return chosen[0]
    if isinstance(device, int):
        for output in outputs:
            if output.index == device:
                return output
        raise PlaybackUnavailable(
            f"no audio output: output device {device} does not exist ({_names(outputs)})"
        )
    exact = [output for output in outputs if output.name == device]
    if exact:
        return exact[0]
    partial = [output for output in outputs if device.lower() in output.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise PlaybackUnavailable(
            f"no audio output: no output device named {device!r} ({_names(outputs)})"
        )
    raise PlaybackUnavailable(f"output device name {device!r} is ambiguous ({_names(partial)})")


def choose_sample_rate(device: OutputDevice, sample_rate: int, channels: int) -> int:
    """`sample_rate` when the device accepts it, else the device's default rate (the material
    is then resampled once). Raises `PlaybackUnavailable` when the device accepts neither."""
    sounddevice = load_sounddevice()
    for rate in dict.fromkeys([sample_rate, device.default_sample_rate]):
        try:
            sounddevice.check_output_settings(
                device=device.index, channels=channels, dtype=SAMPLE_FORMAT, samplerate=rate
            )
            return rate
        except (sounddevice.PortAudioError, ValueError):
            continue
    raise PlaybackUnavailable(
        f"output device {device} accepts neither {sample_rate} Hz nor {device.default_sample_rate} Hz"
    )


def refresh_devices() -> None:
    """Re-scan the devices (after plugging one in). Only while no stream is open."""
    sounddevice = load_sounddevice()
    sounddevice._terminate()  # private, but sounddevice's known way to re-enumerate
    sounddevice._initialize()


def _default_output_index(sounddevice: ModuleType) -> int:
    try:
        index = int(sounddevice.default.device[1])  # sounddevice's (input, output) pair
    except (TypeError, ValueError, IndexError):
        index = -1
    if index < 0:
        index = int(sounddevice.query_hostapis(0)["default_output_device"])
    return index


def _names(outputs: list[OutputDevice]) -> str:
    listed = ", ".join(f"{output.index}: {output.name}" for output in outputs[:8])
    return f"outputs: {listed}" if listed else "no outputs"
