"""`explorer` / `explorer gui [INPUT]`: start the desktop app."""

from __future__ import annotations

import os
import sys

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from explorer.gui.main_window import MainWindow
from explorer.gui.playback import APP_BLOCKSIZE, APP_LATENCY, Playback
from explorer.gui.responsiveness import freeze_heap, reserve_gui_core
from explorer.playback.engine import PlaybackEngine

SETTINGS_ENVIRONMENT = "EXPLORER_SETTINGS"  # a file path: redirects the remembered state (tests)


def make_settings() -> QSettings:
    """QSettings in the user's config folder, or in the INI file `$EXPLORER_SETTINGS`."""
    path = os.environ.get(SETTINGS_ENVIRONMENT)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, "SeparationExplorer", "explorer"
    )


def application() -> QApplication:
    reserve_gui_core()  # workers get every core but the GUI thread's
    freeze_heap()  # full garbage collections then skip everything imported so far
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Separation Explorer")
    app.setOrganizationName("SeparationExplorer")
    return app


def run_app(
    input_name: str = "demo", latency: str | float = APP_LATENCY, blocksize: int = APP_BLOCKSIZE
) -> int:
    """Open the main window on `input_name` and run the event loop; the exit code.
    `latency`, `blocksize`: the audio output's (PortAudio's suggested latency)."""
    app = application()
    playback = Playback(PlaybackEngine(blocksize=blocksize, latency=latency))
    window = MainWindow(playback=playback, settings=make_settings())
    window.show()
    window.open_input(input_name)
    code = app.exec()
    window.shutdown()
    return code
