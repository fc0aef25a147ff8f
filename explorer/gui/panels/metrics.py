"""Metrics per model and stem: SI-SDR, SDR, SIR and SAR (dB) against the true stems, as
`explorer evaluate` computes them; refreshed after every separation and mask edit."""

from __future__ import annotations

import csv
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.audio.io import atomic_output

COLUMNS = ("model", "stem", "si_sdr", "sdr", "sir", "sar")
HEADERS = ("model", "stem", "SI-SDR", "SDR", "SIR", "SAR")


class MetricsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[dict] = []
        self.note = QLabel("separate a track with stems to see metrics (dB)")
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.note)
        layout.addWidget(self.table, 1)

    def set_results(
        self, results: dict, current: str | None, pending: set[str] = frozenset()
    ) -> None:
        """`results`: `{model: Separation}`; the current model's rows first."""
        order = sorted(results, key=lambda model: (model != current, model))
        self.rows = [
            dict(model=model, stem=stem, **values)
            for model in order
            for stem, values in results[model].metrics.items()
        ]
        self.table.setRowCount(len(self.rows))
        for row, values in enumerate(self.rows):
            for column, key in enumerate(COLUMNS):
                value = values.get(key)
                text = (
                    value if isinstance(value, str) else ("—" if value is None else f"{value:6.2f}")
                )
                item = QTableWidgetItem(text)
                if column >= 2:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if values["model"] == current:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, column, item)
        waiting = ", ".join(sorted(pending))
        if waiting:
            self.note.setText(f"computing metrics for {waiting}…")
        elif self.rows:
            self.note.setText(
                "dB against the true stems (— : silent reference or estimate); bold: playing"
            )
        else:
            self.note.setText(
                "separate to see SI-SDR, SDR, SIR and SAR per stem "
                "(needs true stems: a .stem.mp4, a track folder or the demo)"
            )

    def export_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_output(path) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for values in self.rows:
                writer.writerow(
                    ["" if values.get(key) is None else values.get(key) for key in COLUMNS]
                )
        return path
