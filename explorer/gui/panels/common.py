"""Pieces the panels share: colour maps, image placement in seconds and hertz, playheads."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

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
) -> None:
    """Put an image of `(rows, columns)` cells so that column `i` is centred at
    `i * column_seconds` seconds and row `j` at `row_origin + j * row_height` (Hz or units)."""
    image.setRect(
        QRectF(
            -column_seconds / 2,
            row_origin - row_height / 2,
            columns * column_seconds,
            rows * row_height,
        )
    )


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
