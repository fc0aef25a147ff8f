"""GUI fixtures: hidden windows with QSettings in a temporary file, and a short real track.

Tests run with QT_QPA_PLATFORM=offscreen (set in tests/conftest.py). Audio goes through the
real playback engine; on a machine without an output device it runs silently, which the
engine supports."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("PySide6")

TRACK_SECONDS = 1.5


@pytest.fixture(scope="session")
def track_folder(tmp_path_factory) -> Path:
    """A track folder (mixture + four stems, .wav) cut from the real demo track: 1.5 s,
    starting where vocals and accompaniment both play."""
    from explorer.audio.io import write_audio
    from explorer.data.sources import open_track

    track = open_track("demo").excerpt(3.8, TRACK_SECONDS)
    folder = tmp_path_factory.mktemp("tracks") / "demo-excerpt"
    write_audio(folder / "mixture.wav", track.mixture, track.sample_rate)
    for stem in ("vocals", "drums", "bass", "other"):
        write_audio(folder / f"{stem}.wav", track.stems[stem], track.sample_rate)
    return folder


@pytest.fixture
def settings_path(tmp_path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture
def window(qtbot, settings_path):
    from PySide6.QtCore import QSettings

    from explorer.gui.main_window import MainWindow

    main = MainWindow(settings=QSettings(str(settings_path), QSettings.Format.IniFormat))
    qtbot.addWidget(main)
    yield main
    main.shutdown()


def wait_for_jobs(qtbot, window, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: not window.jobs, timeout=timeout)
    qtbot.wait(20)  # let queued signals (results, metrics) arrive


@pytest.fixture
def opened(qtbot, window, track_folder):
    window.open_input(str(track_folder))
    wait_for_jobs(qtbot, window)
    assert window.session.track is not None, window.errors
    return window


@pytest.fixture
def separated(qtbot, opened):
    opened.model_box.setCurrentText("oracle-irm")
    opened.separate()
    wait_for_jobs(qtbot, opened)
    assert opened.session.result is not None, opened.errors
    return opened
