"""Pieces the panels share: colour maps, image placement in seconds and hertz, playheads."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

COLOUR_MAPS = ("magma", "viridis", "inferno", "plasma", "CET-L1", "CET-L4")
PLAYHEAD_PEN = pg.mkPen((255, 230, 90), width=2)
SELECTION_BRUSH = pg.mkBrush(120, 180, 255, 50)


def lookup_table(name: str) -> np.ndarray:
    """A 256-entry RGB lookup table for a pyqtgraph colour map name."""
    try:
        colour_map = pg.colormap.get(name)
    except (FileNotFoundError, KeyError, ValueError):
        colour_map = pg.colormap.get("viridis")
    return colour_map.getLookupTable(nPts=256)


def place_image(
    image: pg.ImageItem,
    columns: int,
    rows: int,
    column_seconds: float,
    row_height: float,
    row_origin: float = 0.0,
    column_origin: float = 0.0,
) -> None:
    """Put an image of `(rows, columns)` cells so that column `i` is centred at
    `column_origin + i * column_seconds` seconds and row `j` at `row_origin + j * row_height`
    (Hz or units)."""
    image.setRect(
        QRectF(
            column_origin - column_seconds / 2,
            row_origin - row_height / 2,
            columns * column_seconds,
            rows * row_height,
        )
    )


def control_rows(*rows: list[QWidget]) -> QVBoxLayout:
    """A panel's controls in rows, each left-aligned: one long row would set the dock's
    minimum width, and a dock narrower than that scrolls its plot out of sight."""
    layout = QVBoxLayout()
    layout.setSpacing(2)
    for widgets in rows:
        row = QHBoxLayout()
        for widget in widgets:
            row.addWidget(widget)
        row.addStretch(1)
        layout.addLayout(row)
    return layout


def add_playhead(plot: pg.PlotItem) -> pg.InfiniteLine:
    line = pg.InfiniteLine(0.0, angle=90, movable=False, pen=PLAYHEAD_PEN)
    line.setZValue(100)
    plot.addItem(line, ignoreBounds=True)
    return line


def style_plot(plot: pg.PlotItem, title: str, left: str, bottom: str | None = "time (s)") -> None:
    plot.setTitle(title, size="9pt")
    plot.setLabel("left", left)
    if bottom:
        plot.setLabel("bottom", bottom)
    plot.setMenuEnabled(False)
    plot.hideButtons()


class AxisLink:
    """Keeps one axis (`"x"` or `"y"`) of many plots equal to a master's, in data units.

    pyqtgraph's own `setXLink` aligns linked views in *screen* space when they share a
    window, which shifts side-by-side plots (an estimate beside its true stem) against each
    other; here every plot shows exactly the master's range. Plots that were deleted are
    dropped on the next update."""

    def __init__(self, master: pg.PlotItem, axis: str = "x") -> None:
        self.master = master
        self.axis = axis
        self.plots: list[pg.PlotItem] = []
        self._busy = False
        self._signal(master).connect(lambda _, span: self._spread(master, span))

    def _signal(self, plot: pg.PlotItem):
        return plot.vb.sigXRangeChanged if self.axis == "x" else plot.vb.sigYRangeChanged

    def _set(self, plot: pg.PlotItem, span) -> None:
        if self.axis == "x":
            plot.setXRange(*span, padding=0)
        else:
            plot.setYRange(*span, padding=0)

    def add(self, plot: pg.PlotItem) -> None:
        """Follow the master (again, after `remove`: connected once per plot)."""
        if not any(item is plot for item in self.plots):
            self.plots.append(plot)
        if not getattr(plot, "_axis_links", None):
            plot._axis_links = set()
        if id(self) not in plot._axis_links:
            plot._axis_links.add(id(self))
            self._signal(plot).connect(lambda _, span, plot=plot: self._spread(plot, span))
        self._set(plot, self.master.vb.viewRange()[0 if self.axis == "x" else 1])

    def contains(self, plot: pg.PlotItem) -> bool:
        return any(item is plot for item in self.plots)

    def remove(self, plot: pg.PlotItem) -> None:
        self.plots = [item for item in self.plots if item is not plot]

    def _spread(self, source: pg.PlotItem, span) -> None:
        if self._busy or (source is not self.master and not self.contains(source)):
            return  # a removed plot keeps its connection but no longer drives the others
        self._busy = True
        try:
            alive = []
            for plot in [self.master, *self.plots]:
                try:
                    if plot is not source:
                        self._set(plot, span)
                    alive.append(plot)
                except RuntimeError:  # its C++ object was deleted with a relayout
                    continue
            self.plots = alive[1:]
        finally:
            self._busy = False
