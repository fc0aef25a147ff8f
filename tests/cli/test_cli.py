"""The command line on real files and on deliberately broken ones (DESIGN.md contract:
one JSON object with --json, exit 2 and one line for bad input, no partial output)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from explorer.cli import main
from tests.conftest import sine


def run(capsys, *arguments: str) -> tuple[int, str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_track(folder: Path, rate: int, channels: int, seconds: float = 1.5) -> Path:
    folder.mkdir(parents=True)
    stems = {
        "vocals": sine(660, seconds, rate, channels),
        "drums": sine(90, seconds, rate, channels, 0.2),
        "bass": sine(50, seconds, rate, channels, 0.2),
        "other": sine(1800, seconds, rate, channels, 0.1),
    }
    for name, samples in {**stems, "mixture": sum(stems.values())}.items():
        soundfile.write(str(folder / f"{name}.wav"), samples.T, rate, subtype="FLOAT")
    return folder


def test_info_json(capsys, rock_stem_mp4: Path) -> None:
    code, out, _ = run(capsys, "info", str(rock_stem_mp4), "--json")
    value = json.loads(out)
    assert code == 0 and out.count("\n") == 1
    assert value["sample_rate"] == 44100 and value["channels"] == 2
    assert value["seconds"] == pytest.approx(299880 / 44100)
    assert sorted(value["stems"]) == ["bass", "drums", "other", "vocals"]


def test_info_on_a_dataset_root(capsys, shared_data: Path) -> None:
    code, out, _ = run(capsys, "info", str(shared_data / "musdb18-preview"), "--json")
    assert (
        code == 0
        and [track["name"] for track in json.loads(out)["tracks"]][0] == "Music Delta - 80s Rock"
    )


def test_evaluate_demo_with_the_oracle_irm(capsys) -> None:
    code, out, err = run(
        capsys, "evaluate", "demo", "--model", "oracle-irm", "--json", "--device", "cpu"
    )
    assert code == 0, err
    value = json.loads(out)
    assert value["model"] == "oracle-irm" and value["device"] == "cpu"
    vocals = value["stems"]["vocals"]
    assert set(vocals) == {"si_sdr", "sdr", "sir", "sar"}
    # An oracle ratio mask separates the vocals far above the mixture's own SI-SDR (about 0 dB).
    assert vocals["si_sdr"] > 4 and vocals["sdr"] > 4 and vocals["sir"] > vocals["sdr"]


def test_separate_the_real_stem_mp4(capsys, tmp_path: Path, rock_stem_mp4: Path) -> None:
    code, out, _ = run(
        capsys,
        "separate",
        str(rock_stem_mp4),
        "--model",
        "oracle-ibm",
        "--out",
        str(tmp_path),
        "--json",
    )
    value = json.loads(out)
    assert code == 0 and set(value["outputs"]) >= {"vocals", "drums", "bass", "other"}
    for path in value["outputs"].values():
        info = soundfile.info(path)
        assert info.samplerate == 44100 and info.channels == 2 and info.frames == 299880
    assert not list(tmp_path.rglob("*.tmp*"))


@pytest.mark.parametrize("rate, channels", [(8000, 1), (192000, 2), (44100, 8)])
def test_odd_rates_and_channel_counts_are_handled(
    capsys, tmp_path: Path, rate: int, channels: int
) -> None:
    folder = write_track(tmp_path / "song", rate, channels, seconds=1.0 if rate > 100000 else 1.5)
    code, out, err = run(
        capsys,
        "separate",
        str(folder),
        "--model",
        "oracle-irm",
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert code == 0, err
    vocals = soundfile.read(json.loads(out)["outputs"]["vocals"], always_2d=True)
    assert vocals[1] == rate and vocals[0].shape[1] == channels


def test_silent_audio_gives_silent_stems_and_a_warning(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "silence"
    folder.mkdir()
    for name in ("mixture", "vocals", "drums", "bass", "other"):
        soundfile.write(str(folder / f"{name}.wav"), np.zeros((44100, 2), dtype=np.float32), 44100)
    code, out, err = run(
        capsys,
        "separate",
        str(folder),
        "--model",
        "oracle-irm",
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert code == 0 and "silence" in err
    assert not np.any(soundfile.read(json.loads(out)["outputs"]["vocals"])[0])
    code, out, _ = run(capsys, "evaluate", str(folder), "--model", "oracle-irm", "--json")
    assert code == 0 and json.loads(out)["stems"]["vocals"] == {
        "si_sdr": None,
        "sdr": None,
        "sir": None,
        "sar": None,
    }


def broken_inputs(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n" * 50)
    good = tmp_path / "good.flac"
    soundfile.write(str(good), sine(440, 1.0, 44100, 2).T, 44100)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(good.read_bytes()[:300])
    zero = tmp_path / "zero.wav"
    soundfile.write(str(zero), np.zeros((0, 1), dtype=np.float32), 44100)
    nan = tmp_path / "nan.wav"
    values = sine(440, 0.5, 44100)
    values[0, 10:20] = np.nan
    soundfile.write(str(nan), values.T, 44100, subtype="FLOAT")
    (tmp_path / "empty folder").mkdir()
    return {
        "missing": tmp_path / "missing.wav",
        "empty folder": tmp_path / "empty folder",
        "text": text,
        "truncated": truncated,
        "zero": zero,
        "nan": nan,
        "no stems": good,
    }


def test_bad_input_exits_2_with_one_line(capsys, tmp_path: Path) -> None:
    out_folder = tmp_path / "out"
    for label, path in broken_inputs(tmp_path).items():
        for command in (
            ["info", str(path)],
            ["separate", str(path), "--model", "oracle-irm", "--out", str(out_folder)],
            ["evaluate", str(path), "--model", "oracle-irm", "--json"],
        ):
            if label == "no stems" and command[0] == "info":
                continue
            code, out, err = run(capsys, *command)
            assert code == 2, (label, command, err)
            assert err.strip().count("\n") == 0 and err.startswith("explorer: error:"), (label, err)
            assert "Traceback" not in err and out == ""
    assert not out_folder.exists() or not any(out_folder.rglob("*.wav"))


def test_bad_models_devices_and_output_folders(capsys, tmp_path: Path, rock_stem_mp4: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    cases = [
        ["separate", "demo", "--model", "no-such-model"],
        ["separate", "demo", "--model", str(blocker)],
        ["separate", "demo", "--model", "oracle-irm", "--out", str(blocker / "sub")],
    ]
    if not __import__("torch").cuda.is_available():
        cases.append(
            [
                "separate",
                "demo",
                "--model",
                "oracle-irm",
                "--device",
                "cuda",
                "--out",
                str(tmp_path),
            ]
        )
    for command in cases:
        code, _, err = run(capsys, *command)
        assert code == 2 and err.count("\n") == 1, (command, err)
    assert not any(tmp_path.rglob("*.wav"))


def test_console_script_exit_codes(tmp_path: Path) -> None:
    """The installed entry point, in a fresh process: no traceback, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "explorer.cli", "info", str(tmp_path / "none.wav")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.strip().startswith(
        "explorer: error: no such file"
    )
    assert result.stdout == ""


def test_gui_audio_options_are_checked_before_a_window_opens(capsys) -> None:
    for command in (["gui", "demo", "--latency", "fast"], ["gui", "demo", "--blocksize", "4"]):
        code, out, err = run(capsys, *command)
        assert code == 2 and err.count("\n") == 1 and err.startswith("explorer: error:"), (
            command,
            err,
        )
        assert ("latency" in err) if "--latency" in command else ("blocksize" in err)


def test_no_command_opens_the_gui_on_the_demo_with_its_defaults() -> None:
    from explorer.cli import parse

    arguments = parse([])
    assert arguments.command == "gui" and arguments.input == "demo"
    assert (arguments.latency, arguments.blocksize) == ("low", 512)
    assert parse(["gui", "song.wav", "--latency", "high"]).latency == "high"
