"""Spectrograms of the mixture, each estimated stem and each true stem, on one time axis.

The mixture plot is the master time axis of the whole window: every time-aligned plot (the
other spectrograms here, activations, the mask) links its x axis to it, so zoom and pan move
them all. Layout: the mixture on top; below it one row per stem with the estimate on the left
and the true stem on the right (when the track has it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from explorer.gui.panels.common import (
    COLOUR_MAPS,
    SELECTION_BRUSH,
    AxisLink,
    add_playhead,
    lookup_table,
    place_image,
    style_plot,
)
from explorer.gui.spectra import Spectrogram

ROW_HEIGHT = 120
MIXTURE = "mixture"
SPARE_PLOTS = 5  # one per estimate of a four-stem model plus accompaniment
SPARE_INTERVAL_MS = 150


@dataclass
class SpectrogramView:
    """One spectrogram; `plot`, `image` and `playhead` exist while it is laid out."""

    key: str  # "mixture", "estimate:<stem>", "true:<stem>"
    title: str
    spectrogram: Spectrogram
    plot: pg.PlotItem | None = None
    image: pg.ImageItem | None = None
    playhead: pg.InfiniteLine | None = None


class SpectrogramPanel(QWidget):
    seek_requested = Signal(float)
    block_requested = Signal(float)  # double click: the NCA block at this time
    range_selected = Signal(float, float)
    readout = Signal(str)
    display_changed = Signal()  # colour map or dB range

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colour_map = "magma"
        self.levels = (-90.0, -10.0)
        self.max_hertz = 11025.0
        self.views: dict[str, SpectrogramView] = {}
        self.frequency_lines: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []
        self._build_controls()
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#15161a")
        self.graphics.ci.setSpacing(2)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.graphics)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(self.controls)
        layout.addWidget(self.scroll, 1)
        self.incremental = False  # the window sets it: new plots one per pass while shown
        # Where pieces of layout work go: the window's Pacer (one piece per pass for the whole
        # window); alone, a timer each.
        self.post: Callable[[Callable[[], None]], None] = lambda piece: QTimer.singleShot(1, piece)
        self._spare_timer = QTimer(self)
        self._spare_timer.setSingleShot(True)
        self._spare_timer.setInterval(SPARE_INTERVAL_MS)
        self._spare_timer.timeout.connect(lambda: self.post(self._add_spare))
        self._spares: list[pg.PlotItem] = []  # plots made ahead, not laid out yet
        self.master = self._make_plot(MIXTURE, 0, 0, 2)
        self.time_link = AxisLink(self.master, "x")  # every time-aligned plot joins this
        self.frequency_link = AxisLink(self.master, "y")
        self.master.setYRange(0, self.max_hertz, padding=0)
        self.region = pg.LinearRegionItem((0, 0), brush=SELECTION_BRUSH, movable=True)
        self.region.setZValue(50)
        self.region.hide()
        self.master.addItem(self.region, ignoreBounds=True)
        self.region.sigRegionChangeFinished.connect(self._region_moved)
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._mouse_clicked)
        self._stem_rows: list[str] = []
        self._placed: dict[str, pg.PlotItem] = {}  # view key -> its plot in the layout
        self._plan: list[tuple[str, int, int]] = []
        # Plots still to create, one per event-loop turn while the panel is shown (creating
        # and first painting a plot costs ~20-30 ms of GUI time: several at once would stall).
        self._pending: list[str] = []
        self._span = 2
        self._pending_scheduled = False

    # ------------------------------------------------------------------ controls
    def _build_controls(self) -> None:
        self.controls = QHBoxLayout()
        self.colour_box = QComboBox()
        self.colour_box.addItems(COLOUR_MAPS)
        self.colour_box.setToolTip("colour map")
        self.colour_box.currentTextChanged.connect(self.set_colour_map)
        self.low_box = _decibel_box(self.levels[0], "lowest dB shown")
        self.high_box = _decibel_box(self.levels[1], "highest dB shown")
        self.low_box.valueChanged.connect(
            lambda _: self.set_levels(self.low_box.value(), self.high_box.value())
        )
        self.high_box.valueChanged.connect(
            lambda _: self.set_levels(self.low_box.value(), self.high_box.value())
        )
        self.accompaniment_box = QCheckBox("accompaniment")
        self.accompaniment_box.setToolTip("show the accompaniment rows (drums + bass + other) too")
        self.accompaniment_box.toggled.connect(lambda _: self._relayout())
        self.readout_label = QLabel("")
        self.readout_label.setMinimumWidth(260)
        self.readout.connect(self.readout_label.setText)
        for widget in (
            QLabel("colour"),
            self.colour_box,
            QLabel("dB"),
            self.low_box,
            QLabel("to"),
            self.high_box,
            self.accompaniment_box,
        ):
            self.controls.addWidget(widget)
        self.controls.addStretch(1)
        self.controls.addWidget(self.readout_label)

    def set_colour_map(self, name: str) -> None:
        self.colour_map = name
        if self.colour_box.currentText() != name:
            self.colour_box.setCurrentText(name)
        table = lookup_table(name)
        for view in self.views.values():
            if view.image is not None:
                view.image.setLookupTable(table)
        self.display_changed.emit()

    def set_levels(self, low: float, high: float) -> None:
        if high <= low:
            high = low + 1.0
        self.levels = (low, high)
        for box, value in ((self.low_box, low), (self.high_box, high)):
            if box.value() != value:
                box.blockSignals(True)
                box.setValue(value)
                box.blockSignals(False)
        for view in self.views.values():
            if view.image is not None:
                view.image.setLevels(self.levels)
        self.display_changed.emit()

    # ------------------------------------------------------------------ content
    def _make_plot(self, key: str, row: int, column: int, column_span: int = 1) -> pg.PlotItem:
        """Lay out a plot for `key`: a spare one when there is one (creating a plot costs
        ~20-30 ms of GUI time, so spares are made ahead, while the window idles)."""
        plot = self._spares.pop() if self._spares else _new_plot()
        self.schedule_spares()  # refill for the next result
        self.graphics.addItem(plot, row=row, col=column, colspan=column_span)
        plot.setTitle(key, size="9pt")
        if key != MIXTURE:
            self.time_link.add(plot)
            self.frequency_link.add(plot)
        return plot

    def schedule_spares(self) -> None:
        """Make spare plots ahead, one per shot of a timer, while the window idles."""
        if (
            len(self._spares) < SPARE_PLOTS
            and self.incremental
            and not self._spare_timer.isActive()
        ):
            self._spare_timer.start()

    def _add_spare(self) -> None:
        """Create one spare plot (one per timer shot: each is a short, separate piece of work)."""
        if not self.isVisible():
            return  # made when the panel is shown again
        if len(self._spares) < SPARE_PLOTS:
            self._spares.append(_new_plot())
        self.schedule_spares()

    def set_spectrograms(self, items: list[tuple[str, str, Spectrogram]]) -> None:
        """Show (or replace) several spectrograms, `(key, title, spectrogram)` each, with one
        relayout. Keys: `mixture`, `estimate:<stem>`, `true:<stem>`."""
        relayout = False
        for key, title, spectrogram in items:
            view = self.views.get(key)
            if view is None:
                view = self.views[key] = SpectrogramView(key, title, spectrogram)
                if key == MIXTURE:
                    self._attach(view, self.master)
                else:
                    relayout = True
            view.spectrogram, view.title = spectrogram, title
            if view.plot is not None:
                self.refresh(key)
        if relayout:
            self._relayout()
        if any(key == MIXTURE for key, _, _ in items):
            self.reset_view()

    def reset_view(self) -> None:
        """Show the whole track, 0 to `max_hertz`."""
        view = self.views.get(MIXTURE)
        if view is None:
            return
        spectrogram = view.spectrogram
        seconds = spectrogram.frames * spectrogram.frame_seconds
        self.master.vb.setLimits(xMin=-0.5, xMax=seconds + 0.5, yMax=spectrogram.sample_rate / 2)
        self.master.setXRange(0, seconds, padding=0)
        self.master.setYRange(0, min(self.max_hertz, spectrogram.sample_rate / 2), padding=0)

    def set_spectrogram(self, key: str, title: str, spectrogram: Spectrogram) -> None:
        self.set_spectrograms([(key, title, spectrogram)])

    def refresh(self, key: str) -> None:
        """Re-upload a spectrogram's image (after its values changed in place)."""
        view = self.views[key]
        if view.image is None:
            return
        spectrogram = view.spectrogram
        view.image.setImage(spectrogram.decibels, levels=self.levels, autoLevels=False)
        place_image(
            view.image,
            spectrogram.frames,
            spectrogram.bins,
            spectrogram.frame_seconds,
            spectrogram.bin_hertz,
        )
        view.plot.setTitle(view.title, size="9pt")

    def remove_prefix(self, prefix: str) -> None:
        """Drop every view whose key starts with `prefix` (e.g. all estimates)."""
        for key in [key for key in self.views if key.startswith(prefix)]:
            del self.views[key]
        self._relayout()

    def replace_prefix(self, prefix: str, items: list[tuple[str, str, Spectrogram]]) -> None:
        """Make the views under `prefix` exactly `items`, with one relayout; views that stay
        keep their plots (another model's estimates of the same stems)."""
        keep = {key for key, _, _ in items}
        for key in [key for key in self.views if key.startswith(prefix) and key not in keep]:
            del self.views[key]
        self.set_spectrograms(items)
        self._relayout()

    def clear(self) -> None:
        for key in [key for key in self.views if key != MIXTURE]:
            del self.views[key]
        self._relayout()

    def _attach(self, view: SpectrogramView, plot: pg.PlotItem) -> None:
        """Give a view a plot, with a fresh image and playhead (removing a plot from the
        layout deletes its items, so they are never reused)."""
        view.plot = plot
        view.image = pg.ImageItem(axisOrder="row-major")
        view.image.setLookupTable(lookup_table(self.colour_map))
        plot.addItem(view.image)
        view.playhead = add_playhead(plot)
        self.refresh(view.key)

    def _relayout(self) -> None:
        """Lay the stem rows out below the mixture (estimate left, true right). Plots whose
        view keeps its place are reused (creating a plot costs tens of ms of GUI time); an
        unchanged plan does nothing."""
        stems = self._stem_rows_to_show()
        has_estimates = any(key.startswith("estimate:") for key in self.views)
        has_truth = any(key.startswith("true:") for key in self.views)
        columns = [
            prefix
            for prefix, present in (("estimate:", has_estimates), ("true:", has_truth))
            if present
        ]
        span = 1 if len(columns) > 1 else 2
        plan = [
            (prefix + stem, row, column)
            for row, stem in enumerate(stems, start=1)
            for column, prefix in enumerate(columns)
            if prefix + stem in self.views
        ]
        current = {
            key: plot
            for key, plot in self._placed.items()
            if key in self.views and self.views[key].plot is plot
        }
        pending = [key for key in self._pending if key in self.views and key not in current]
        if plan == self._plan and len(current) + len(pending) == len(plan):
            return
        incremental = self.incremental and self.isVisible()
        for plot in self._placed.values():
            self.graphics.removeItem(plot)  # kept alive by `self._placed` until dropped below
        placed: dict[str, pg.PlotItem] = {}
        self._pending = []
        for key, row, column in plan:
            view = self.views[key]
            plot = current.pop(key, None)
            if plot is not None:
                self.graphics.addItem(plot, row=row, col=column, colspan=span)
            elif incremental:
                self._pending.append(key)  # created in a later event-loop turn
                continue
            else:
                plot = self._make_plot(key, row, column, span)
                self._attach(view, plot)
            placed[key] = plot
        for key, plot in self._placed.items():  # plots no longer shown: let them go
            if placed.get(key) is not plot:
                self.time_link.remove(plot)
                self.frequency_link.remove(plot)
                if key in self.views and self.views[key].plot is plot:
                    view = self.views[key]
                    view.plot = view.image = view.playhead = None
        self._placed, self._plan, self._span = placed, plan, span
        self.frequency_lines = [
            (plot, line)
            for plot, line in self.frequency_lines
            if plot is self.master or plot in placed.values()
        ]
        self._arrange_axes(stems)
        self.graphics.setMinimumHeight(ROW_HEIGHT * (1 + len(stems)))
        self._stem_rows = stems
        self._settle_layout()
        self._schedule_pending()
        self.schedule_spares()

    def _arrange_axes(self, stems: list[str]) -> None:
        """Time ticks only under the bottom row and frequency ticks only in the left column
        (they are shared): every axis shown costs ~1.5 ms of Python at each repaint after a
        resize or a pan, the bulk of a layout change's paint."""
        last_row = {key for key, row, _ in self._plan if row == len(stems)}
        left_column = {key for key, _, column in self._plan if column == 0}
        for key, plot in [*self._placed.items(), (MIXTURE, self.master)]:
            bottom = key in last_row or (key == MIXTURE and not last_row)
            if bottom:
                plot.setLabel("bottom", "time (s)")  # (this shows the axis too)
            plot.showAxis("bottom", bottom)
            plot.showAxis("left", key in left_column or key == MIXTURE)

    def _schedule_pending(self) -> None:
        if self._pending and not self._pending_scheduled:
            self._pending_scheduled = True
            self.post(self._create_next)

    def _create_next(self) -> None:
        """Create one pending plot (in its planned place), then come back for the next."""
        self._pending_scheduled = False
        while self._pending:
            key = self._pending.pop(0)
            place = next(((row, column) for k, row, column in self._plan if k == key), None)
            view = self.views.get(key)
            if place is None or view is None or key in self._placed:
                continue
            plot = self._make_plot(key, place[0], place[1], self._span)
            self._attach(view, plot)
            self._placed[key] = plot
            self._arrange_axes(self._stem_rows)
            self._settle_layout()
            break
        self._schedule_pending()

    def _settle_layout(self) -> None:
        """Give every plot its final geometry and view transform now: left to the paint, the
        new transforms invalidate the axes during it and the whole panel paints twice."""
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)  # the scroll area's
        self.graphics.ci.layout.activate()
        self.graphics.scene().prepareForPaint()

    def finish_layout(self) -> None:
        """Create every pending plot now (for callers that need them at once)."""
        while self._pending:
            self._create_next()

    def _stem_rows_to_show(self) -> list[str]:
        """With estimates: the stems the model gives (each beside its true stem); without:
        every true stem. `accompaniment` only when asked for, or when it is the only other."""
        estimated = [key.split(":", 1)[1] for key in self.views if key.startswith("estimate:")]
        stems = estimated or [key.split(":", 1)[1] for key in self.views if key.startswith("true:")]
        others = [stem for stem in stems if stem not in ("vocals", "accompaniment")]
        if not self.accompaniment_box.isChecked() and others:
            stems = [stem for stem in stems if stem != "accompaniment"]
        return stems

    def plots(self) -> list[pg.PlotItem]:
        return [view.plot for view in self.views.values() if view.plot is not None]

    # ------------------------------------------------------------------ time and selection
    def set_playhead(self, seconds: float) -> None:
        for view in self.views.values():
            if view.playhead is not None and view.plot is not None:
                view.playhead.setValue(seconds)

    def show_time_range(self, span: tuple[float, float] | None) -> None:
        if span is None:
            self.region.hide()
            return
        self.region.blockSignals(True)
        self.region.setRegion(span)
        self.region.blockSignals(False)
        self.region.show()

    def mark_frequencies(
        self, frequencies: list[float], colour: tuple[int, int, int] = (90, 220, 255)
    ) -> None:
        """Horizontal lines at `frequencies` (Hz) on every spectrogram (matrix row/column picks)."""
        for plot, line in self.frequency_lines:
            plot.removeItem(line)
        self.frequency_lines = []
        pen = pg.mkPen(colour, width=1, style=Qt.PenStyle.DashLine)
        for plot in self.plots():
            for frequency in frequencies[:64]:
                line = pg.InfiniteLine(frequency, angle=0, movable=False, pen=pen)
                plot.addItem(line, ignoreBounds=True)
                self.frequency_lines.append((plot, line))

    def _region_moved(self) -> None:
        low, high = self.region.getRegion()
        self.range_selected.emit(float(low), float(high))

    def _view_at(self, scene_position) -> tuple[SpectrogramView, float, float] | None:
        for view in self.views.values():
            if view.plot is not None and view.plot.sceneBoundingRect().contains(scene_position):
                point = view.plot.vb.mapSceneToView(scene_position)
                return view, point.x(), point.y()
        return None

    def _mouse_moved(self, scene_position) -> None:
        found = self._view_at(scene_position)
        if found is None:
            return
        view, seconds, hertz = found
        value = view.spectrogram.value_at(seconds, hertz)
        decibels = "" if value is None else f"  {value:6.1f} dB"
        self.readout.emit(f"{view.title}:  {seconds:7.3f} s  {hertz:7.0f} Hz{decibels}")

    def _mouse_clicked(self, event) -> None:
        found = self._view_at(event.scenePos())
        if found is None or event.button() != Qt.MouseButton.LeftButton:
            return
        seconds = max(0.0, found[1])
        if event.double():
            self.block_requested.emit(seconds)
        else:
            self.seek_requested.emit(seconds)


def _new_plot() -> pg.PlotItem:
    plot = pg.PlotItem(enableMenu=False)  # no context menu is offered: skip building it
    plot.setMinimumHeight(ROW_HEIGHT - 10)
    style_plot(plot, "", "Hz", None)
    plot.getAxis("left").setWidth(48)
    for side in ("left", "bottom"):
        # Fixed tick-text space: sized to the text at first paint, an axis changes its own
        # geometry and the whole panel lays out and paints a second time.
        plot.getAxis(side).setStyle(autoExpandTextSpace=False)
    plot.vb.setLimits(yMin=0)
    plot.vb.disableAutoRange()
    return plot


def _decibel_box(value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(-160.0, 40.0)
    box.setSingleStep(5.0)
    box.setDecimals(0)
    box.setValue(value)
    box.setToolTip(tip)
    return box
