"""The main window: draws the Session and forwards the user's intents to it.

It owns no exploration state of its own: the track, results, selection, time and mask edits
live in `explorer.session.Session`; the window subscribes to its events and updates the
panels. Long work runs in worker threads (`workers.start_job`); audio goes through
`playback.Playback` (the playback engine). Every failure becomes a dialog; none ends the app.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolBar,
    QWidget,
)

from explorer import session as events
from explorer.audio.io import atomic_output, write_audio
from explorer.device import describe, resolve_device
from explorer.errors import InputError
from explorer.gui import spectra
from explorer.gui.dialogs import DatasetBrowser, ShortcutsDialog
from explorer.gui.jobs import (
    MIXTURE,
    SURGERY_STEM,
    nca_block_job,
    open_job,
    separation_job,
    source_means_job,
    training_job,
    unit_surgery_job,
)
from explorer.gui.pacing import Pacer
from explorer.gui.panels.activations import ActivationsPanel
from explorer.gui.panels.kernels import KernelsPanel
from explorer.gui.panels.mask import MaskPanel
from explorer.gui.panels.matrix import MatrixPanel
from explorer.gui.panels.metrics import MetricsPanel
from explorer.gui.panels.spectrogram import SpectrogramPanel
from explorer.gui.panels.training import TrainingPanel
from explorer.gui.panels.transport import TransportPanel
from explorer.gui.playback import Playback
from explorer.gui.responsiveness import start_warmup
from explorer.gui.workers import JobHandle, start_job
from explorer.models import registry
from explorer.models.probes import Kernels, Matrix
from explorer.progress import Progress
from explorer.session import Session, audible_stems, metrics_job

PLAYHEAD_INTERVAL_MS = 30
METRICS_DELAY_MS = 400
MAX_RECENT = 10
OPEN_CHECKPOINT = "Open checkpoint…"
DEVICES = ("auto", "cpu", "cuda")
SHORTCUTS = [
    ("Space", "play / pause"),
    ("Ctrl+.", "stop (back to the start)"),
    ("A", "A/B: mixture or separation"),
    ("L", "loop on/off"),
    ("Ctrl+Z", "undo a mask edit"),
    ("Ctrl+Shift+Z, Ctrl+Y", "redo"),
    ("Ctrl+=, Ctrl+-", "zoom in / out in time"),
    ("Ctrl+0", "show the whole track"),
    ("[ , ]", "previous / next NCA block"),
    ("double click on a spectrogram", "NCA of the block at that time"),
    ("T, B, E, R", "mask tool: toggle, brush, erase, rectangle"),
    ("Ctrl+O", "open a track"),
    ("Ctrl+Shift+O", "open from a dataset (MUSDB18)"),
    ("Ctrl+Return", "separate with the chosen model"),
    ("F1", "this help"),
    ("Ctrl+Q", "quit"),
]


class MainWindow(QMainWindow):
    def __init__(
        self,
        session: Session | None = None,
        playback: Playback | None = None,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Separation Explorer")
        self.setObjectName("main-window")
        self.setAcceptDrops(True)
        self.session = session or Session()
        self.playback = playback or Playback()
        self.settings = settings or QSettings("SeparationExplorer", "explorer")
        self.jobs: dict[str, JobHandle] = {}
        self.input_name: str | None = None
        self.images: dict[str, spectra.Spectrogram] = {}  # mixture and true stems, by panel key
        self.estimate_images: dict[
            str, dict[str, spectra.Spectrogram]
        ] = {}  # model -> stem -> image
        self.pacer = Pacer(self)  # `_defer`red pieces of drawing, one per event-loop pass
        self.prepared_mask = None  # the first mask to edit, encoded by the separation worker
        self.errors: list[str] = []  # every error shown to the user (tests read it)
        self.block_starts: list[float] = []
        self._dialogs: list[QWidget] = []
        self._metrics_again = False
        self._metrics_stale = False
        self._stale_panels: set[str] = set()
        self._quitting = False

        self._build_panels()
        self._build_toolbar()
        self._build_status_bar()
        self._build_actions()
        self._build_menus()
        self._connect_panels()
        self._subscribe()
        self._restore_settings()

        self.timer = QTimer(self)
        self.timer.setInterval(PLAYHEAD_INTERVAL_MS)
        self.timer.timeout.connect(self._poll_playback)
        self.timer.start()
        self.metrics_timer = QTimer(self)
        self.metrics_timer.setSingleShot(True)
        self.metrics_timer.setInterval(METRICS_DELAY_MS)
        self.metrics_timer.timeout.connect(self.compute_metrics)

    # ------------------------------------------------------------------ building
    def _build_panels(self) -> None:
        self.spectrograms = SpectrogramPanel()
        self.spectrograms.incremental = True
        self.spectrograms.post = self.pacer.post
        self.spectrograms.schedule_spares()  # ready before the first track's rows need them
        self.setCentralWidget(self.spectrograms)
        self.transport = TransportPanel()
        self.transport.set_engine_status(self.playback.status)
        self.mask_panel = MaskPanel()
        self.spectrograms.time_link.add(self.mask_panel.plot)
        self.spectrograms.frequency_link.add(self.mask_panel.plot)
        self.mask_panel.frequency_link = self.spectrograms.frequency_link
        self.activations = ActivationsPanel()
        self.activations.set_time_link(self.spectrograms.time_link)
        self.kernels = KernelsPanel()
        self.matrix = MatrixPanel()
        self.metrics = MetricsPanel()
        self.training = TrainingPanel(_trainable_kinds())
        right = Qt.DockWidgetArea.RightDockWidgetArea
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        self.mask_dock = self._dock("Mask", self.mask_panel, right)
        self.activations_dock = self._dock("Activations", self.activations, right)
        self.kernels_dock = self._dock("Kernels", self.kernels, right)
        self.matrix_dock = self._dock("Couplings", self.matrix, right)
        for dock in (self.activations_dock, self.kernels_dock, self.matrix_dock):
            self.tabifyDockWidget(self.mask_dock, dock)
        self.mask_dock.raise_()
        self.transport_dock = self._dock("Transport", self.transport, bottom)
        for name, dock in (
            ("activations", self.activations_dock),
            ("kernels", self.kernels_dock),
            ("matrix", self.matrix_dock),
        ):
            dock.visibilityChanged.connect(
                lambda visible, name=name: self._refresh_panel(name) if visible else None
            )
        self.metrics_dock = self._dock("Metrics", self.metrics, bottom)
        self.training_dock = self._dock("Training", self.training, bottom)
        self.splitDockWidget(self.transport_dock, self.metrics_dock, Qt.Orientation.Horizontal)
        self.tabifyDockWidget(self.metrics_dock, self.training_dock)
        self.metrics_dock.raise_()
        self.resizeDocks([self.mask_dock], [640], Qt.Orientation.Horizontal)
        self.resizeDocks(
            [self.transport_dock, self.metrics_dock], [900, 500], Qt.Orientation.Horizontal
        )
        self.resizeDocks([self.transport_dock], [230], Qt.Orientation.Vertical)
        self.panels = {
            "spectrograms": self.spectrograms,
            "transport": self.transport,
            "mask": self.mask_panel,
            "activations": self.activations,
            "kernels": self.kernels,
            "couplings": self.matrix,
            "metrics": self.metrics,
            "training": self.training,
        }
        self.training_available = bool(_trainable_kinds())
        if not self.training_available:
            self.training.start_button.setEnabled(False)
            self.training.status_label.setText("training is not available in this installation")

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
        # In a scroll area: a panel's controls (a row of boxes) would otherwise set the dock's
        # minimum width, and the docks together push the window wider than the screen.
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(widget)
        dock.setWidget(scroll)
        self.addDockWidget(area, dock)
        return dock

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("toolbar-main")
        self.addToolBar(bar)
        self.toolbar = bar
        self.model_box = QComboBox()
        self.model_box.setMinimumWidth(150)
        self.model_box.setToolTip(
            "model: built-in demo weights, oracle masks, or an opened checkpoint"
        )
        self.model_box.addItems(registry.builtin_names())
        self.model_box.addItem(OPEN_CHECKPOINT)
        self.model_box.activated.connect(self._model_activated)
        self.device_box = QComboBox()
        self.device_box.setToolTip("compute device: auto = CUDA when available, else CPU")
        self.device_box.addItems(_device_choices())
        self.separate_button = QPushButton("Separate")
        self.separate_button.setToolTip("separate the track with the chosen model (Ctrl+Return)")
        self.separate_button.clicked.connect(self.separate)
        self.result_box = QComboBox()
        self.result_box.setToolTip("which separation is shown and heard")
        self.result_box.setMinimumWidth(130)
        self.result_box.activated.connect(lambda _: self._result_chosen())
        self.device_label = QLabel("")
        self.device_label.setToolTip("the device the shown separation ran on")
        self._show_device(None)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.message_label = QLabel("")
        self.readout_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(260)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("cancel the running separation or analysis")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_jobs)
        status.addWidget(self.message_label, 1)
        status.addPermanentWidget(self.readout_label)
        status.addPermanentWidget(self.progress_bar)
        status.addPermanentWidget(self.cancel_button)

    def _build_actions(self) -> None:
        action = self._action
        self.open_action = action(
            "&Open track…", QKeySequence.StandardKey.Open, self.open_file_dialog
        )
        self.dataset_action = action(
            "Open from &dataset…", "Ctrl+Shift+O", self.open_dataset_dialog
        )
        self.checkpoint_action = action("Open &checkpoint…", None, self.open_checkpoint_dialog)
        self.separate_action = action("&Separate", "Ctrl+Return", self.separate)
        self.play_action = action("Play / pause", "Space", self.toggle_play)
        self.stop_action = action("Stop", "Ctrl+.", self.stop)
        self.ab_action = action("A/B mixture / separation", "A", self.transport.ab_button.toggle)
        self.loop_action = action("Loop", "L", self.transport.loop_box.toggle)
        self.undo_action = action("&Undo mask edit", QKeySequence.StandardKey.Undo, self.undo)
        self.redo_action = action("&Redo mask edit", QKeySequence.StandardKey.Redo, self.redo)
        self.redo_action.setShortcuts(
            [QKeySequence(QKeySequence.StandardKey.Redo), QKeySequence("Ctrl+Y")]
        )
        self.zoom_in_action = action("Zoom in", "Ctrl+=", lambda: self.zoom(0.5))
        self.zoom_out_action = action("Zoom out", "Ctrl+-", lambda: self.zoom(2.0))
        self.zoom_all_action = action("Whole track", "Ctrl+0", self.spectrograms.reset_view)
        self.previous_block_action = action("Previous NCA block", "[", lambda: self.step_block(-1))
        self.next_block_action = action("Next NCA block", "]", lambda: self.step_block(1))
        self.help_action = action("Keyboard shortcuts", "F1", self.show_shortcuts)
        self.quit_action = action("&Quit", QKeySequence.StandardKey.Quit, self.close)
        for tool, key in (("toggle", "T"), ("brush", "B"), ("erase", "E"), ("rectangle", "R")):
            action(f"Mask tool: {tool}", key, lambda tool=tool: self.mask_panel.set_tool(tool))
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)
        bar = self.toolbar
        bar.addAction(self.open_action)
        bar.addAction(self.dataset_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" model "))
        bar.addWidget(self.model_box)
        bar.addWidget(QLabel(" device "))
        bar.addWidget(self.device_box)
        bar.addWidget(self.separate_button)
        bar.addSeparator()
        bar.addWidget(QLabel(" showing "))
        bar.addWidget(self.result_box)
        bar.addWidget(self.device_label)
        bar.addSeparator()
        bar.addAction(self.play_action)
        bar.addAction(self.stop_action)

    def _action(self, text: str, shortcut, handler) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(handler)
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for item in (self.open_action, self.dataset_action, self.checkpoint_action):
            file_menu.addAction(item)
        self.recent_menu = file_menu.addMenu("Open &recent")
        export = file_menu.addMenu("&Export")
        export.addAction("Stems as heard…", self.export_stems_dialog)
        export.addAction("Mask (.npy and PNG)…", self.export_mask_dialog)
        export.addAction("Couplings matrix (.npy / .csv)…", self.export_matrix_dialog)
        export.addAction("Metrics (.csv)…", self.export_metrics_dialog)
        panel_menu = export.addMenu("Panel as PNG")
        for name in self.panels:
            panel_menu.addAction(name, lambda name=name: self.export_panel_dialog(name))
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit = menus.addMenu("&Edit")
        edit.addAction(self.undo_action)
        edit.addAction(self.redo_action)
        play = menus.addMenu("&Playback")
        for item in (self.play_action, self.stop_action, self.ab_action, self.loop_action):
            play.addAction(item)
        view = menus.addMenu("&View")
        for item in (self.zoom_in_action, self.zoom_out_action, self.zoom_all_action):
            view.addAction(item)
        view.addSeparator()
        for dock in self.findChildren(QDockWidget):
            view.addAction(dock.toggleViewAction())
        analysis = menus.addMenu("&Analysis")
        analysis.addAction(self.separate_action)
        analysis.addAction(self.previous_block_action)
        analysis.addAction(self.next_block_action)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.help_action)
        self._rebuild_recent_menu()

    def _connect_panels(self) -> None:
        spectrograms, transport = self.spectrograms, self.transport
        spectrograms.seek_requested.connect(self.seek)
        spectrograms.block_requested.connect(self.select_block_at)
        spectrograms.range_selected.connect(
            lambda low, high: self.session.select(time_range=(low, high))
        )
        spectrograms.readout.connect(self.readout_label.setText)
        spectrograms.display_changed.connect(self._display_changed)
        spectrograms.master.vb.sigXRangeChanged.connect(
            lambda _, span: transport.show_view_range(*span)
        )
        transport.seek_requested.connect(self.seek)
        transport.play_toggled.connect(self.toggle_play)
        transport.stop_requested.connect(self.stop)
        transport.loop_changed.connect(self.playback.set_loop)
        transport.source_changed.connect(self._set_source)
        transport.gain_changed.connect(self._guard(self.playback.set_gain))
        transport.mute_changed.connect(self._guard(self.playback.set_mute))
        transport.solo_changed.connect(self._guard(self.playback.set_solo))
        mask = self.mask_panel
        mask.stem_chosen.connect(self._guard(self.session.begin_mask))
        mask.toggle_requested.connect(self._guard(self.session.toggle_cell))
        mask.paint_requested.connect(self._guard(self.session.paint_cells))
        mask.rectangle_requested.connect(self._guard(self.session.fill_rectangle))
        mask.threshold_requested.connect(self._guard(self.session.threshold_mask))
        mask.invert_requested.connect(self._guard(self.session.invert_mask))
        mask.reset_requested.connect(self._guard(self.session.reset_mask))
        mask.undo_requested.connect(self.undo)
        mask.redo_requested.connect(self.redo)
        mask.readout.connect(self.readout_label.setText)
        self.activations.source_means_requested.connect(self.compute_source_means)
        self.activations.surgery_requested.connect(lambda key, units: self.listen_to_units(units))
        self.activations.units_selected.connect(
            lambda _, units: self.session.select(units=tuple(units))
        )
        self.kernels.kernel_selected.connect(lambda index: self.session.select(kernel=index))
        self.kernels.play_requested.connect(self._guard(self.playback.preview))
        self.matrix.compute_requested.connect(self.compute_nca)
        self.matrix.step_requested.connect(self.step_block)
        self.matrix.cell_selected.connect(
            lambda row, column: self.session.select(matrix_row=row, matrix_column=column)
        )
        self.matrix.frequencies_marked.connect(self.spectrograms.mark_frequencies)
        self.training.start_requested.connect(self.start_training)
        self.training.pause_toggled.connect(self._pause_training)
        self.training.cancel_requested.connect(self.cancel_training)
        self.training.load_requested.connect(self.load_checkpoint_into_session)

    def _subscribe(self) -> None:
        hub = self.session.events
        hub.on_error = self._listener_failed
        hub.subscribe(events.TRACK, self._on_track)
        hub.subscribe(events.RESULTS, self._on_results)
        hub.subscribe(events.CURRENT, self._on_current)
        hub.subscribe(events.PROBES, self._on_probes)
        hub.subscribe(events.METRICS, lambda model, metrics: self._refresh_metrics())
        hub.subscribe(events.TIME, self._on_time)
        hub.subscribe(events.SELECTION, self._on_selection)
        hub.subscribe(events.AUDIO_EDIT, self._on_audio_edit)
        hub.subscribe(events.MASK, self._on_mask)
        hub.subscribe(events.HISTORY, self._on_history)

    def _guard(self, function):
        """Wrap a panel intent: InputError (and any bug) becomes a dialog, never a crash."""

        def guarded(*arguments):
            try:
                return function(*arguments)
            except InputError as error:
                self.show_error("Cannot do that", str(error))
            except Exception as error:
                self.show_error(
                    "Unexpected error", f"{type(error).__name__}: {error}", traceback.format_exc()
                )
            return None

        return guarded

    # ------------------------------------------------------------------ settings
    def _restore_settings(self) -> None:
        settings = self.settings
        geometry = settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(*first_run_size(self.screen() or QGuiApplication.primaryScreen()))
        state = settings.value("window_state")
        if state is not None:
            self.restoreState(state)
        self.spectrograms.set_colour_map(str(settings.value("colour_map", "magma")))
        self.spectrograms.set_levels(
            float(settings.value("db_low", -90.0)), float(settings.value("db_high", -10.0))
        )
        model = str(settings.value("model", "oracle-irm"))
        if self.model_box.findText(model) >= 0:
            self.model_box.setCurrentText(model)
        device = str(settings.value("device", "auto"))
        if self.device_box.findText(device) >= 0:
            self.device_box.setCurrentText(device)

    def save_settings(self) -> None:
        settings = self.settings
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("window_state", self.saveState())
        settings.setValue("colour_map", self.spectrograms.colour_map)
        settings.setValue("db_low", self.spectrograms.levels[0])
        settings.setValue("db_high", self.spectrograms.levels[1])
        if self.model_box.currentText() != OPEN_CHECKPOINT:
            settings.setValue("model", self.model_box.currentText())
        settings.setValue("device", self.device_box.currentText())
        settings.sync()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(item) for item in (value or [])]

    def _remember_recent(self, input_name: str) -> None:
        recent = [input_name] + [item for item in self.recent_files() if item != input_name]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        for item in self.recent_files():
            self.recent_menu.addAction(item, lambda item=item: self.open_input(item))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def _display_changed(self) -> None:
        self._update_mask_background()

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
            "Audio (*.wav *.flac *.mp3 *.ogg *.mp4 *.m4a *.aiff *.aif);;All files (*)",
        )
        if path:
            self.settings.setValue("last_folder", str(Path(path).parent))
            self.open_input(path)

    def open_dataset_dialog(self) -> None:
        browser = DatasetBrowser(str(self.settings.value("dataset_root", "")), self)
        browser.track_chosen.connect(self.open_input)
        browser.finished.connect(
            lambda _: self.settings.setValue("dataset_root", browser.root_edit.text())
        )
        self.dataset_browser = browser
        browser.open()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            self.show_error("Cannot open", "only local files and folders can be dropped here")
            return
        event.acceptProposedAction()
        path = paths[0]
        if Path(path).suffix.lower() in (".pt", ".pth", ".ckpt"):
            self.add_checkpoint(path)
        else:
            self.open_input(path)

    def _opened(self, result) -> None:
        input_name, track, images = result
        self.input_name = input_name
        self.images = dict(images)
        self.estimate_images = {}
        self.block_starts = []
        self.session.open_track(track)
        self.setWindowTitle(f"{track.name} — Separation Explorer")
        self._remember_recent(input_name)

    def _on_track(self, track) -> None:
        self.spectrograms.clear()
        self.spectrograms.set_spectrograms(
            [
                (key, "mixture" if key == MIXTURE else f"{key.split(':', 1)[1]} (true)", image)
                for key, image in self.images.items()
                if key == MIXTURE or key.startswith("true:")
            ]
        )
        self.spectrograms.mark_frequencies([])
        # The rest in passes of their own: all in one, the pass took ~70 ms with its paints.
        self._defer_for_track(
            track, lambda: self.transport.set_waveform(track.mixture, track.sample_rate)
        )
        self._defer_for_track(track, lambda: self._load_track_audio(track))

    def _defer_for_track(self, track, function) -> None:
        """Run `function()` from the event loop while `track` is still the open one (at once in
        a hidden window)."""
        if not self.isVisible():
            function()
            return
        self.pacer.post(lambda: self.session.track is track and self._guard(function)())

    def _load_track_audio(self, track) -> None:
        """The new track's audio, transport and empty probe panels (after its spectrograms)."""
        messages = self.playback.load(track.mixture, track.sample_rate, {})
        self.playback.set_source("mixture")  # nothing separated yet: play the original
        self.transport.ab_button.setChecked(True)
        self.transport.set_stems([])
        self.transport.set_playing(False)
        self.matrix.set_probe_matrices({}, None)
        self._on_probes({}, None)
        self._show_device(None)
        for message in messages:
            self.status(message)
        self.status(
            f"opened {track.name}: {track.seconds:.1f} s, {track.sample_rate} Hz, "
            f"true stems: {', '.join(track.stems) or 'none'}"
        )
        # What workers import on first use (responsiveness.py), once the track is drawn: during
        # the launch it would compete with decoding it (measured: 4.3 -> 6.9 s to the demo).
        self._when_drawn(start_warmup)

    # ------------------------------------------------------------------ models
    def _model_activated(self, _: int) -> None:
        if self.model_box.currentText() == OPEN_CHECKPOINT:
            self.model_box.setCurrentIndex(0)
            self.open_checkpoint_dialog()

    def open_checkpoint_dialog(self) -> None:
        folder = str(self.settings.value("last_folder", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(
            self, "Open checkpoint", folder, "Checkpoints (*.pt *.pth *.ckpt);;All files (*)"
        )
        if path:
            self.add_checkpoint(path)

    def add_checkpoint(self, path: str) -> bool:
        """Validate a checkpoint (format and a kind this installation can load) and add it to
        the model picker. A wrong file gets a dialog."""
        try:
            payload = registry.load_checkpoint(path)
            registry.builtin_names()  # registers the families' kinds
            if payload["kind"] not in registry._LOADERS:
                raise InputError(
                    f"{Path(path).name} is a '{payload['kind']}' checkpoint, which this "
                    f"explorer cannot load (known kinds: {', '.join(sorted(registry._LOADERS))})"
                )
        except InputError as error:
            self.show_error("Cannot open checkpoint", str(error))
            return False
        if self.model_box.findText(path) < 0:
            self.model_box.insertItem(self.model_box.count() - 1, path)
        self.model_box.setCurrentText(path)
        self.status(f"checkpoint {Path(path).name}: a '{payload['kind']}' model")
        return True

    def separate(self, model: str | None = None) -> None:
        """Separate the open track with the chosen (or given) model, in a worker."""
        track = self.session.track
        if track is None:
            self.show_error("Nothing to separate", "open a track first")
            return
        model = model or self.model_box.currentText()
        device = self.device_box.currentText()
        try:
            resolve_device(device)  # CUDA chosen where there is none: say so before any work
        except InputError as error:
            self.show_error("Device not available", str(error))
            return
        self.run_job("separate", lambda: separation_job(track, model, device), self._separated)

    def _separated(self, outcome) -> None:
        track, result, images, prepared = outcome
        if track is not self.session.track:
            return  # another track was opened meanwhile
        self.estimate_images[result.model] = images
        self.prepared_mask = prepared
        self.session.add_result(result)
        self.status(
            f"{result.model} separated {track.name} on {result.device} in {result.seconds:.1f} s"
        )
        # After the drawing: a metrics worker would compete with it for the cores.
        self._defer(result, lambda _: self._when_drawn(self.compute_metrics))

    def load_checkpoint_into_session(self, path: str) -> None:
        if not Path(path).is_file():
            self.show_error(
                "No checkpoint yet", f"{path} does not exist yet (wait for the first epoch)"
            )
            return
        if self.add_checkpoint(path):
            self.separate(path)

    def _result_chosen(self) -> None:
        model = self.result_box.currentData()
        if model and model != self.session.current:
            self._guard(self.session.set_current)(model)

    def _on_results(self, results) -> None:
        self.result_box.blockSignals(True)
        self.result_box.clear()
        for model in results:
            self.result_box.addItem(short_name(model), model)
        self.result_box.blockSignals(False)
        self._refresh_metrics()

    def _on_current(self, result) -> None:
        index = self.result_box.findData(result.model)
        if index >= 0 and index != self.result_box.currentIndex():
            self.result_box.setCurrentIndex(index)
        self._show_device(result.device)
        audible = audible_stems(result.stems)
        muted = tuple(stem for stem in result.stems if stem not in audible)
        self.playback.set_stems(result.stems, muted)
        self.transport.set_stems(list(result.stems), muted)
        if self.playback.source == "mixture":
            self.transport.ab_button.setChecked(False)  # hear the separation
        # The audio switched at once; the pictures follow in the next event-loop turns, one
        # piece each, so the GUI never stalls for the sum of them.
        self._defer(result, self._show_estimates)
        self._refresh_metrics()

    def _show_estimates(self, result) -> None:
        self.spectrograms.replace_prefix(
            "estimate:",
            [
                (
                    f"estimate:{stem}",
                    f"{stem} ({short_name(result.model)})",
                    self._estimate_image(stem, result),
                )
                for stem in result.stems
            ],
        )

    def _defer(self, result, function) -> None:
        """Run `function(result)` from the event loop, unless another result is shown by then
        (a hidden window, as in tests, runs it at once: nobody waits on its paint)."""
        if not self.isVisible():
            function(result)
            return

        def later() -> None:
            if self.session.result is result:
                self._guard(function)(result)

        self.pacer.post(later)

    def _when_drawn(self, function) -> None:
        """Call `function()` once every queued piece of drawing has run."""
        if len(self.pacer):
            self.pacer.post(lambda: self._when_drawn(function))
        else:
            self._guard(function)()

    def _estimate_image(self, stem: str, result) -> spectra.Spectrogram:
        """The display spectrogram of a result's stem (computed here if the worker did not)."""
        images = self.estimate_images.setdefault(result.model, {})
        if stem not in images:
            track = self.session.track
            images[stem] = spectra.compute(
                result.stems[stem], track.sample_rate, spectra.hop_for(track.mixture.shape[-1])
            )
        return images[stem]

    def _on_probes(self, probes: dict, result) -> None:
        """Every probe panel draws the probes of its type (one panel per type, DESIGN.md).
        The mask becomes editable at once; the other panels draw when their dock is shown
        (a hidden view skips refresh), one per event-loop turn."""
        separator = getattr(result, "separator", None)
        self.activations.surgery_keys = (
            {"activations/code"} if hasattr(separator, "coder") else set()
        )
        available, reason = _nca_available(separator)
        self.matrix.set_nca_available(available, reason)
        self.block_starts = []
        stems = self.session.mask_stems()
        current = "vocals" if "vocals" in stems else (stems[0] if stems else None)
        self.mask_panel.set_stems(stems, current)
        self.mask_panel.set_layer(None)
        prepared, self.prepared_mask = self.prepared_mask, None
        if current is not None:  # in the next pass: the audio switch above comes first
            self._defer(result, lambda _: self._begin_first_mask(current, prepared))
        self._update_mask_background()
        self._stale_panels = {"activations", "kernels", "matrix"}
        for name in ("activations", "kernels", "matrix"):
            self._defer(result, lambda result, name=name: self._refresh_panel(name))

    def _begin_first_mask(self, stem: str, prepared) -> None:
        try:
            self.session.begin_mask(stem, prepared)
        except InputError as error:  # not an error of the user's: say it where it shows
            self.mask_panel.plot.setTitle(str(error), size="9pt")
            self.mask_panel.set_stems([], None)

    def _refresh_panel(self, name: str, force: bool = False) -> None:
        """Draw the current probes in one panel, if it is stale and shown (or `force`)."""
        dock = {
            "activations": self.activations_dock,
            "kernels": self.kernels_dock,
            "matrix": self.matrix_dock,
        }[name]
        shown = not self.isVisible() or not dock.visibleRegion().isEmpty()
        if name not in self._stale_panels or not (shown or force):
            return
        self._stale_panels.discard(name)
        result, track = self.session.result, self.session.track
        found = result.probes if result is not None else {}
        if name == "activations":
            self.activations.set_probes(found, track is not None and bool(track.stems))
        elif name == "kernels":
            self.kernels.set_probe(
                next((p for p in found.values() if isinstance(p, Kernels)), None)
            )
        else:
            frontend = getattr(getattr(result, "separator", None), "frontend", None)
            bin_hertz = (
                frontend.sample_rate / frontend.config.n_fft if frontend is not None else None
            )
            self.matrix.set_probe_matrices(
                {key: probe for key, probe in found.items() if isinstance(probe, Matrix)}, bin_hertz
            )

    def _show_device(self, device: str | None) -> None:
        if device is None:
            try:
                device = describe(resolve_device("auto"))
            except InputError:
                device = "cpu"
            self.device_label.setText(f"  device: {device} (auto)  ")
        else:
            self.device_label.setText(f"  ran on: {device}  ")

    # ------------------------------------------------------------------ mask
    def _on_mask(self, layer, frames) -> None:
        if layer is not self.mask_panel.layer:
            self.mask_panel.set_layer(layer)
        elif layer is not None:
            self.mask_panel.refresh()

    def _on_history(self, undo: bool, redo: bool) -> None:
        self.undo_action.setEnabled(undo)
        self.redo_action.setEnabled(redo)
        self.mask_panel.set_history(undo, redo)

    def _on_audio_edit(self, edit) -> None:
        """A mask edit re-synthesised `edit.samples`: swap them into the playing audio first,
        then update the stem's spectrogram columns and (later) the metrics."""
        self.playback.replace_range(edit.stem, edit.start, edit.samples)
        key = f"estimate:{edit.stem}"
        result = self.session.result
        image = (
            self.estimate_images.get(result.model, {}).get(edit.stem)
            if result is not None
            else None
        )
        if image is not None:
            spectra.update_range(
                image, result.stems[edit.stem], edit.start, edit.start + edit.samples.shape[-1]
            )
            self.spectrograms.refresh(key)
        self.metrics_timer.start()

    def _update_mask_background(self) -> None:
        self.mask_panel.set_background(
            self.images.get(MIXTURE), self.spectrograms.colour_map, self.spectrograms.levels
        )

    def undo(self) -> None:
        self._guard(self.session.undo)()

    def redo(self) -> None:
        self._guard(self.session.redo)()

    # ------------------------------------------------------------------ metrics
    def compute_metrics(self, force: bool = False) -> None:
        """Score the shown result (with its edits) against the true stems, in a worker. A
        hidden metrics panel skips the work until it is shown (BSS Eval costs seconds)."""
        track, result = self.session.track, self.session.result
        if track is None or result is None or not track.stems:
            return
        if not force and self.metrics_dock.visibleRegion().isEmpty():
            self._metrics_stale = True
            return
        self._metrics_stale = False
        if "metrics" in self.jobs:
            self._metrics_again = True
            return
        model = result.model
        stems = {stem: samples.copy() for stem, samples in result.stems.items()}
        self._metrics_pending = model
        self.run_job(
            "metrics",
            lambda: metrics_job(track, stems),
            lambda metrics: self._metrics_done(track, model, metrics),
            background=True,
        )
        self._refresh_metrics()

    def _metrics_done(self, track, model: str, metrics) -> None:
        self._metrics_pending = None
        if track is self.session.track:
            self.session.set_metrics(model, metrics)

    def _refresh_metrics(self) -> None:
        pending = {getattr(self, "_metrics_pending", None)} - {None}
        self.metrics.set_results(self.session.results, self.session.current, pending)

    # ------------------------------------------------------------------ activations and NCA
    def compute_source_means(self) -> None:
        track, result = self.session.track, self.session.result
        if track is None or result is None or result.separator is None:
            return
        separator, seconds = result.separator, result.probe_seconds
        self.run_job(
            "activations",
            lambda: source_means_job(separator, track, seconds),
            self.activations.show_source_means,
        )

    def listen_to_units(self, units: tuple[int, ...]) -> None:
        """Code-unit surgery in a worker, then play the result soloed as its own stem."""
        track, result = self.session.track, self.session.result
        separator = getattr(result, "separator", None)
        if track is None or not hasattr(separator, "coder"):
            self.status("unit surgery needs the naive autoencoder (its code layer decodes alone)")
            return
        self.run_job(
            "surgery",
            lambda: unit_surgery_job(separator, track, tuple(units)),
            lambda wave: self._surgery_done(wave, units),
        )

    def _surgery_done(self, wave, units) -> None:
        self.playback.mixer.set_stem(SURGERY_STEM, wave)
        stems = list(self.playback.stem_names)
        for stem in stems:
            self.playback.set_solo(stem, stem == SURGERY_STEM)
        self.transport.set_stems(stems)
        self.transport.stem_widgets[SURGERY_STEM][0].setChecked(True)
        self.transport.ab_button.setChecked(False)
        self.status(
            f"soloed: the track decoded from unit(s) {', '.join(map(str, units))} — press Space"
        )

    def select_block_at(self, seconds: float) -> None:
        """Double click: the NCA block that contains `seconds`."""
        span = self._block_seconds()
        if span is None:
            self.status("NCA needs a DAE, MSS-DAE or SF model: separate with one first")
            return
        self.session.select(block=max(0, int(seconds // span)))
        self.compute_nca()

    def step_block(self, step: int) -> None:
        span = self._block_seconds()
        track = self.session.track
        if span is None or track is None:
            self.status("NCA needs a DAE, MSS-DAE or SF model: separate with one first")
            return
        last = max(0, int(track.seconds // span) - 1)
        self.session.select(block=min(last, max(0, self.session.selection.block + step)))
        self.compute_nca()

    def _block_seconds(self) -> float | None:
        result = self.session.result
        separator = getattr(result, "separator", None)
        if not _nca_available(separator)[0]:
            return None
        return (
            self.matrix.frames_box.value() * separator.frontend.hop_length / separator.sample_rate
        )

    def compute_nca(self) -> None:
        track, result = self.session.track, self.session.result
        span = self._block_seconds()
        if track is None or result is None or span is None:
            self.status("NCA needs a DAE, MSS-DAE or SF model: separate with one first")
            return
        if "nca" in self.jobs:
            self.jobs["nca"].cancel()  # a newer block wins: drop the stale request
            self.jobs["nca"].wait(5000)
        block = self.session.selection.block
        start = block * span
        if start + span > track.seconds:
            start = max(0.0, track.seconds - span)
        self.session.select(time_range=(start, start + span))
        separator, strategies = result.separator, self.matrix.strategies()
        frames, iterations = self.matrix.frames_box.value(), self.matrix.iterations_box.value()
        self.matrix.set_block_text(f"block {block + 1}: {start:.2f}–{start + span:.2f} s …")
        self.matrix_dock.raise_()
        self.run_job(
            "nca",
            lambda: nca_block_job(separator, track, strategies, frames, start, iterations),
            self._nca_done,
        )

    def _nca_done(self, outcome: dict) -> None:
        self.matrix.set_nca(outcome["matrices"])
        model_snr = outcome.get("model_snr_to_true_db")
        extra = "" if model_snr is None else f", model SNR→true {model_snr:.1f} dB"
        self.matrix.set_block_text(
            f"block {self.session.selection.block + 1}: {outcome['start']:.2f} s, T = {outcome['frames']}{extra}"
        )
        self.status(
            f"couplings of block {self.session.selection.block + 1} ready "
            f"({', '.join(outcome['matrices'])})"
        )

    # ------------------------------------------------------------------ training
    def start_training(self, parameters: dict) -> None:
        device = self.device_box.currentText()
        try:
            resolve_device(device)
        except InputError as error:
            self.show_error("Device not available", str(error))
            return
        track_input = self.input_name
        handle = self.run_job(
            "train",
            lambda: training_job(parameters, track_input, device),
            self._trained,
            self.training.show_progress,
            background=True,
        )
        if handle is not None:
            self.training.started()
            handle.failed.connect(
                lambda *_: self.training.finished("training failed (see the message)", False)
            )
            handle.cancelled.connect(
                lambda: self.training.finished(
                    "cancelled: the checkpoint of the last finished epoch is kept",
                    Path(parameters["out"]).is_file(),
                )
            )
            self.training_dock.raise_()

    def _trained(self, result: dict) -> None:
        self.training.finished(
            f"finished: {result['epochs']} epochs ({result['stopped']}), best validation "
            f"loss {result['final_loss']:.4g} → {result['checkpoint']}",
            True,
        )

    def _pause_training(self, paused: bool) -> None:
        handle = self.jobs.get("train")
        if handle is not None:
            handle.set_paused(paused)
            self.status("training paused" if paused else "training resumed")

    def cancel_training(self) -> None:
        handle = self.jobs.get("train")
        if handle is not None:
            handle.cancel()

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

    def zoom(self, factor: float) -> None:
        """Zoom the shared time axis around the playhead (or the view centre)."""
        low, high = self.spectrograms.master.vb.viewRange()[0]
        centre = self.session.time if low <= self.session.time <= high else (low + high) / 2
        width = max(0.05, (high - low) * factor)
        self.spectrograms.master.setXRange(centre - width / 2, centre + width / 2, padding=0)

    def _set_source(self, source: str) -> None:
        if source == "separation" and not self.playback.stem_names:
            self.status("nothing separated yet: playing the mixture")
            self.transport.ab_button.setChecked(True)
            return
        self.playback.set_source(source)

    def _poll_playback(self) -> None:
        """The playhead follows the engine's stream clock (never a timer of our own)."""
        error = self.playback.error()
        if error:
            self.show_error("Playback stopped", error)
            self.transport.set_engine_status(self.playback.status)
        playing = self.playback.playing
        position = self.playback.position()
        if playing or abs(position - self.session.time) > 1e-4:
            self.session.set_time(position)
            if playing:
                self._follow(position)
        if self.transport.play_button.text() != ("Pause" if playing else "Play"):
            self.transport.set_playing(playing)

    def _follow(self, seconds: float) -> None:
        """Page the view when the playhead leaves it (as Sonic Visualiser does)."""
        low, high = self.spectrograms.master.vb.viewRange()[0]
        if not low <= seconds <= high and high > low:
            self.spectrograms.master.setXRange(seconds, seconds + (high - low), padding=0)

    def _on_time(self, seconds: float) -> None:
        self.spectrograms.set_playhead(seconds)
        self.transport.set_position(seconds)
        self.mask_panel.set_playhead(seconds)
        self.activations.set_playhead(seconds)

    def _on_selection(self, selection, changed) -> None:
        if "time_range" in changed:
            self.spectrograms.show_time_range(selection.time_range)
        if "kernel" in changed:
            self.activations.highlight_unit(selection.kernel)

    # ------------------------------------------------------------------ export
    def export_stems(self, folder: str | Path) -> list[Path]:
        """Every stem as heard (with mask edits), and the mix as heard (gains, mutes, A/B)."""
        track, result = self.session.track, self.session.result
        if track is None or result is None:
            raise InputError("separate a track first: there are no stems to export")
        folder = Path(folder)
        written = [
            write_audio(folder / f"{stem}.wav", samples, track.sample_rate)
            for stem, samples in result.stems.items()
        ]
        written.append(self.playback.export_mix(folder / "mix-as-heard.wav"))
        return written

    def export_mask(self, path: str | Path) -> list[Path]:
        """The edited mask as `.npy` `(bins, frames)` and as a PNG (low frequencies at the bottom)."""
        layer = self.session.mask
        if layer is None:
            raise InputError("no mask to export: separate with a mask model first")
        path = Path(path).with_suffix(".npy")
        with atomic_output(path) as temporary, open(temporary, "wb") as handle:
            np.save(handle, layer.values)
        picture = np.ascontiguousarray((np.clip(layer.values[::-1], 0, 1) * 255).astype(np.uint8))
        image = QImage(
            picture.data,
            picture.shape[1],
            picture.shape[0],
            picture.shape[1],
            QImage.Format.Format_Grayscale8,
        )
        png = path.with_suffix(".png")
        with atomic_output(png) as temporary:
            if not image.save(str(temporary), "PNG"):
                raise InputError(f"cannot write {png}")
        return [path, png]

    def export_panel(self, name: str, path: str | Path) -> Path:
        path = Path(path)
        with atomic_output(path) as temporary:
            if not self.panels[name].grab().save(str(temporary), "PNG"):
                raise InputError(f"cannot write {path}")
        return path

    def export_matrix(self, path: str | Path) -> Path:
        if not self.matrix.shown():
            raise InputError("no matrix is shown to export")
        return self.matrix.export(path)

    def export_metrics(self, path: str | Path) -> Path:
        if not self.metrics.rows:
            raise InputError("no metrics to export yet")
        return self.metrics.export_csv(path)

    def _save_dialog(self, title: str, name: str, filters: str) -> str | None:
        folder = Path(str(self.settings.value("last_folder", str(Path.home()))))
        path, _ = QFileDialog.getSaveFileName(self, title, str(folder / name), filters)
        if path:
            self.settings.setValue("last_folder", str(Path(path).parent))
        return path or None

    def export_stems_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export stems as heard to")
        if folder:
            written = self._guard(self.export_stems)(folder)
            if written:
                self.status(f"wrote {len(written)} files to {folder}")

    def export_mask_dialog(self) -> None:
        path = self._save_dialog("Export mask", "mask.npy", "NumPy (*.npy)")
        if path and self._guard(self.export_mask)(path):
            self.status(f"wrote {path} and its PNG")

    def export_matrix_dialog(self) -> None:
        path = self._save_dialog("Export matrix", "couplings.npy", "NumPy (*.npy);;CSV (*.csv)")
        if path and self._guard(self.export_matrix)(path):
            self.status(f"wrote {path}")

    def export_metrics_dialog(self) -> None:
        path = self._save_dialog("Export metrics", "metrics.csv", "CSV (*.csv)")
        if path and self._guard(self.export_metrics)(path):
            self.status(f"wrote {path}")

    def export_panel_dialog(self, name: str) -> None:
        path = self._save_dialog(f"Export {name} as PNG", f"{name}.png", "PNG (*.png)")
        if path and self._guard(self.export_panel)(name, path):
            self.status(f"wrote {path}")

    def show_shortcuts(self) -> None:
        dialog = ShortcutsDialog(SHORTCUTS, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.shortcuts_dialog = dialog
        dialog.open()

    # ------------------------------------------------------------------ jobs
    def run_job(
        self, name: str, factory, on_finished, on_progress=None, background: bool = False
    ) -> JobHandle | None:
        """Run a job in a worker thread; one job per `name` at a time. Foreground jobs drive
        the status bar's progress bar and Cancel; background ones (metrics, training) do not."""
        if name in self.jobs:
            self.status(f"{name} is already running")
            return None
        handle = start_job(factory, name, self)
        handle.background = background
        self.jobs[name] = handle
        handle.progress.connect(lambda progress: self._job_progress(handle, progress, on_progress))
        handle.finished.connect(lambda result: self._job_finished(name, result, on_finished))
        handle.failed.connect(lambda error, trace: self._job_failed(name, error, trace))
        handle.cancelled.connect(lambda: self.status(f"{name} cancelled"))
        handle.done.connect(lambda: self._job_done(name, handle))
        self._update_progress_widgets()
        return handle

    def cancel_jobs(self) -> None:
        for handle in list(self.jobs.values()):
            if not handle.background:
                handle.cancel()

    def _job_progress(self, handle: JobHandle, progress: Progress, callback) -> None:
        if not handle.background:
            self.progress_bar.setValue(int(1000 * progress.fraction))
            self.progress_bar.setFormat(progress.message[:44] or "%p%")
            if progress.message:
                self.message_label.setText(progress.message)
        if callback is not None:
            callback(progress)

    def _job_finished(self, name: str, result, callback) -> None:
        try:
            callback(result)
        except Exception as error:  # a bug in a result handler: report it, keep the app up
            self._job_failed(name, error, traceback.format_exc())

    def _job_failed(self, name: str, error: BaseException, trace: str) -> None:
        verb = {
            "open": "open the track",
            "separate": "separate",
            "train": "train",
            "nca": "compute the NCA",
            "metrics": "compute the metrics",
        }.get(name, name)
        if isinstance(error, InputError):
            self.show_error(f"Cannot {verb}", str(error))
        elif _is_out_of_memory(error):
            self.show_error(
                f"Cannot {verb}", f"out of memory: {error} (try the CPU device or a shorter track)"
            )
        else:
            self.show_error(
                f"{name.capitalize()} failed", f"{type(error).__name__}: {error}", trace
            )

    def _job_done(self, name: str, handle: JobHandle) -> None:
        if self.jobs.get(name) is handle:
            del self.jobs[name]
        handle.release()
        self._update_progress_widgets()
        if name == "metrics" and self._metrics_again:
            self._metrics_again = False
            self.compute_metrics()
        if name == "metrics":
            self._refresh_metrics()

    def _update_progress_widgets(self) -> None:
        visible = any(not handle.background for handle in self.jobs.values())
        if visible and not self.progress_bar.isVisible():
            self.progress_bar.setValue(0)
        self.progress_bar.setVisible(visible)
        self.cancel_button.setVisible(visible)

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
        if self._quitting:
            return
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

    def ask(self, title: str, text: str) -> bool:
        """A yes/no question (tests replace this method)."""
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def _listener_failed(self, event: str, error: BaseException) -> None:
        trace = "".join(traceback.format_exception(error))
        self.show_error(
            "Display error", f"updating the view after '{event}' failed: {error}", trace
        )

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if "train" in self.jobs and not self.ask(
            "Training is running",
            "Stop the training run and quit? The checkpoint of the last finished epoch is kept.",
        ):
            event.ignore()
            return
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Cancel and wait for every job, stop the timers and the audio."""
        self._quitting = True
        self.pacer.clear()
        for handle in list(self.jobs.values()):
            handle.set_paused(False)
            handle.cancel()
        for handle in list(self.jobs.values()):
            handle.wait(30000)
        self.timer.stop()
        self.metrics_timer.stop()
        self.playback.close()


def first_run_size(screen) -> tuple[int, int]:
    """1600 x 1000, or less: what fits the screen's available area (less the frame)."""
    width, height = 1600, 1000
    if screen is not None:
        available = screen.availableGeometry()
        width = min(width, max(640, available.width() - 16))
        height = min(height, max(480, available.height() - 40))
    return width, height


def short_name(model: str) -> str:
    """A model's name for titles: a checkpoint path becomes its file stem."""
    return Path(model).stem if model.endswith((".pt", ".pth", ".ckpt")) else model


def _trainable_kinds() -> list[str]:
    try:
        from explorer.training import tasks
    except ImportError:
        return []
    return tasks.trainable_kinds()


def _device_choices() -> list[str]:
    import torch

    cuda = (
        [f"cuda:{index}" for index in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    return list(DEVICES) + cuda


def _nca_available(separator) -> tuple[bool, str]:
    """NCA works on the DAE family (explorer.analysis.nca)."""
    try:
        from explorer.analysis import nca  # noqa: F401
        from explorer.models.dae import DAESeparator
    except ImportError:
        return False, "the NCA is not available in this installation"
    if not isinstance(separator, DAESeparator):
        return False, "NCA needs a DAE, MSS-DAE or SF model"
    return True, ""


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or "out of memory" in str(error).lower()
