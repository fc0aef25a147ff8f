"""The main window: draws the Session and forwards the user's intents to it.

It owns no exploration state of its own: the track, results, selection, time and mask edits
live in `explorer.session.Session`; the window subscribes to its events and updates the
panels. Long work runs in worker threads (`workers.start_job`); audio goes through
`playback.Playback`.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QToolBar,
    QWidget,
)

from explorer import session as events
from explorer.data.sources import open_track
from explorer.errors import InputError
from explorer.gui import spectra
from explorer.gui.panels.spectrogram import MIXTURE, SpectrogramPanel
from explorer.gui.panels.transport import TransportPanel
from explorer.gui.playback import Playback
from explorer.gui.workers import JobHandle, start_job
from explorer.progress import Progress
from explorer.session import Session

PLAYHEAD_INTERVAL_MS = 30
MAX_RECENT = 10


def open_job(input_name: str):
    """Load a track and compute the display spectrograms of its mixture and true stems."""
    yield Progress(0, 1, f"opening {input_name}")
    track = open_track(input_name)
    images = {}
    signals = [(MIXTURE, track.mixture)] + [
        (f"true:{stem}", samples) for stem, samples in track.stems.items()
    ]
    for index, (key, samples) in enumerate(signals):
        images[key] = spectra.compute(samples, track.sample_rate)
        yield Progress(index + 1, len(signals), f"spectrogram of {key}")
    return input_name, track, images


class MainWindow(QMainWindow):
    def __init__(
        self,
        session: Session | None = None,
        playback: Playback | None = None,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Separation Explorer")
        self.setAcceptDrops(True)
        self.session = session or Session()
        self.playback = playback or Playback()
        self.settings = settings or QSettings("SeparationExplorer", "explorer")
        self.jobs: dict[str, JobHandle] = {}
        self.input_name: str | None = None
        self.errors: list[str] = []  # every error shown to the user (tests read it)
        self._dialogs: list[QMessageBox] = []

        self.spectrograms = SpectrogramPanel()
        self.setCentralWidget(self.spectrograms)
        self.transport = TransportPanel()
        self.transport.set_engine_status(self.playback.status)
        self.transport_dock = self._dock(
            "Transport", self.transport, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self._build_toolbar()
        self._build_status_bar()
        self._build_actions()
        self._connect_panels()
        self._subscribe()

        self.timer = QTimer(self)
        self.timer.setInterval(PLAYHEAD_INTERVAL_MS)
        self.timer.timeout.connect(self._poll_playback)
        self.timer.start()
        self.resize(1400, 900)

    # ------------------------------------------------------------------ building
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("toolbar-main")
        self.addToolBar(bar)
        self.toolbar = bar

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.message_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(240)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_jobs)
        status.addWidget(self.message_label, 1)
        status.addPermanentWidget(self.progress_bar)
        status.addPermanentWidget(self.cancel_button)

    def _build_actions(self) -> None:
        self.open_action = self._action(
            "&Open track…", QKeySequence.StandardKey.Open, self.open_file_dialog
        )
        self.play_action = self._action("Play / pause", "Space", self.toggle_play)
        self.stop_action = self._action("Stop", "Ctrl+.", self.stop)
        self.toolbar.addAction(self.open_action)
        self.toolbar.addAction(self.play_action)
        self.toolbar.addAction(self.stop_action)

    def _action(self, text: str, shortcut, handler) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        action.triggered.connect(handler)
        self.addAction(action)
        return action

    def _connect_panels(self) -> None:
        self.spectrograms.seek_requested.connect(self.seek)
        self.transport.seek_requested.connect(self.seek)
        self.transport.play_toggled.connect(self.toggle_play)
        self.transport.stop_requested.connect(self.stop)
        self.transport.loop_changed.connect(self.playback.set_loop)
        self.transport.source_changed.connect(self._set_source)
        self.transport.gain_changed.connect(self.playback.set_gain)
        self.transport.mute_changed.connect(self.playback.set_mute)
        self.transport.solo_changed.connect(self.playback.set_solo)
        self.spectrograms.master.vb.sigXRangeChanged.connect(
            lambda _, span: self.transport.show_view_range(*span)
        )

    def _subscribe(self) -> None:
        hub = self.session.events
        hub.on_error = self._listener_failed
        hub.subscribe(events.TRACK, self._on_track)
        hub.subscribe(events.TIME, self._on_time)

    # ------------------------------------------------------------------ opening
    def open_input(self, input_name: str) -> None:
        """Open a track by INPUT (a path, a track folder or `demo`) in a worker."""
        self.run_job("open", lambda: open_job(input_name), self._opened)

    def open_file_dialog(self) -> None:
        folder = str(self.settings.value("last_folder", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open track",
            folder,
            "Audio (*.wav *.flac *.mp3 *.ogg *.mp4 *.m4a *.aiff);;All files (*)",
        )
        if path:
            self.settings.setValue("last_folder", str(Path(path).parent))
            self.open_input(path)

    def _opened(self, result) -> None:
        input_name, track, images = result
        self.input_name = input_name
        self._pending_images = images
        self.session.open_track(track)
        self.setWindowTitle(f"{track.name} — Separation Explorer")

    def _on_track(self, track) -> None:
        images = getattr(self, "_pending_images", {})
        self.spectrograms.clear()
        self.spectrograms.set_spectrograms(
            [
                (key, "mixture" if key == MIXTURE else f"{key.split(':', 1)[1]} (true)", image)
                for key, image in images.items()
            ]
        )
        self.transport.set_waveform(track.mixture, track.sample_rate)
        messages = self.playback.load(track.mixture, track.sample_rate, {})
        self.playback.set_source("mixture")  # no separation yet: play the original
        self.transport.set_stems([])
        for message in messages:
            self.status(message)
        self.status(
            f"opened {track.name}: {track.seconds:.1f} s, {track.sample_rate} Hz, "
            f"stems: {', '.join(track.stems) or 'none'}"
        )

    # ------------------------------------------------------------------ playback
    def toggle_play(self) -> None:
        if self.playback.playing:
            self.playback.pause()
        else:
            self.playback.play()
        self.transport.set_playing(self.playback.playing)

    def stop(self) -> None:
        self.playback.stop()
        self.transport.set_playing(False)
        self.session.set_time(0.0)

    def seek(self, seconds: float) -> None:
        self.playback.seek(seconds)
        self.session.set_time(seconds)

    def _set_source(self, source: str) -> None:
        if source == "separation" and not self.playback.stem_names:
            self.status("nothing separated yet: playing the mixture")
            source = "mixture"
        self.playback.set_source(source)

    def _poll_playback(self) -> None:
        """The playhead follows the engine's stream clock (never a timer of our own)."""
        error = self.playback.error()
        if error:
            self.show_error("Playback stopped", error)
            self.transport.set_engine_status(self.playback.status)
        playing = self.playback.playing
        if playing or abs(self.playback.position() - self.session.time) > 1e-4:
            self.session.set_time(self.playback.position())
        if self.transport.play_button.text() != ("Pause" if playing else "Play"):
            self.transport.set_playing(playing)

    def _on_time(self, seconds: float) -> None:
        self.spectrograms.set_playhead(seconds)
        self.transport.set_position(seconds)

    # ------------------------------------------------------------------ jobs
    def run_job(self, name: str, factory, on_finished, on_progress=None) -> JobHandle | None:
        """Run a job in a worker thread; one job per `name` at a time."""
        if name in self.jobs:
            self.status(f"{name} is already running")
            return None
        handle = start_job(factory, name, self)
        self.jobs[name] = handle
        worker = handle  # its signals arrive in the GUI thread
        worker.progress.connect(lambda progress: self._job_progress(name, progress, on_progress))
        worker.finished.connect(lambda result: self._job_finished(name, result, on_finished))
        worker.failed.connect(lambda error, trace: self._job_failed(name, error, trace))
        worker.cancelled.connect(lambda: self.status(f"{name} cancelled"))
        worker.done.connect(lambda: self._job_done(name))
        self._update_progress_widgets()
        return handle

    def cancel_jobs(self) -> None:
        for name, handle in list(self.jobs.items()):
            if name != "train":  # training has its own controls
                handle.cancel()

    def _job_progress(self, name: str, progress: Progress, callback) -> None:
        if name != "train":
            self.progress_bar.setValue(int(1000 * progress.fraction))
            self.progress_bar.setFormat(progress.message[:40])
        if progress.message:
            self.message_label.setText(progress.message)
        if callback is not None:
            callback(progress)

    def _job_finished(self, name: str, result, callback) -> None:
        try:
            callback(result)
        except Exception as error:  # a bug in a result handler: report, keep the app up
            self._job_failed(name, error, traceback.format_exc())

    def _job_failed(self, name: str, error: BaseException, trace: str) -> None:
        if isinstance(error, InputError):
            self.show_error(f"Cannot {name}", str(error))
        else:
            self.show_error(f"{name} failed", f"{type(error).__name__}: {error}", trace)

    def _job_done(self, name: str) -> None:
        handle = self.jobs.pop(name, None)
        if handle is not None:
            handle.wait(5000)
            handle.thread.deleteLater()
        self._update_progress_widgets()

    def _update_progress_widgets(self) -> None:
        visible = any(name != "train" for name in self.jobs)
        self.progress_bar.setVisible(visible)
        self.cancel_button.setVisible(visible)
        if visible:
            self.progress_bar.setValue(0)

    def wait_for_jobs(self, milliseconds: int = 60000) -> None:
        for handle in list(self.jobs.values()):
            handle.wait(milliseconds)

    # ------------------------------------------------------------------ messages
    def status(self, text: str) -> None:
        self.message_label.setText(text)

    def show_error(self, title: str, text: str, details: str | None = None) -> None:
        """A dialog that does not block the event loop (workers and playback go on)."""
        self.errors.append(f"{title}: {text}")
        self.status(f"{title}: {text}")
        box = QMessageBox(
            QMessageBox.Icon.Warning if details is None else QMessageBox.Icon.Critical,
            title,
            text,
            QMessageBox.StandardButton.Ok,
            self,
        )
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _: self._dialogs.remove(box) if box in self._dialogs else None)
        self._dialogs.append(box)
        box.open()

    def _listener_failed(self, event: str, error: BaseException) -> None:
        trace = "".join(traceback.format_exception(error))
        self.show_error(
            "Display error", f"updating the view after '{event}' failed: {error}", trace
        )

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Cancel and wait for every job, stop the timer and the audio."""
        for handle in list(self.jobs.values()):
            handle.cancel()
        for handle in list(self.jobs.values()):
            handle.wait(10000)
        self.timer.stop()
        self.playback.close()
