"""Dialogs: the MUSDB18 / MUSDB18-HQ browser and the keyboard shortcuts help."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.data.sources import list_dataset
from explorer.errors import InputError


class DatasetBrowser(QDialog):
    """Lists the tracks of a dataset root with their subset; `track_chosen(path)` on open."""

    track_chosen = Signal(str)

    def __init__(self, root: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open a track from a dataset")
        self.resize(640, 480)
        self.root_edit = QLineEdit(root)
        self.root_edit.setPlaceholderText(
            "MUSDB18 or MUSDB18-HQ root, or a folder of track folders"
        )
        self.root_edit.returnPressed.connect(self.refresh)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.subset_box = QComboBox()
        self.subset_box.addItems(["all", "train", "test"])
        self.subset_box.currentTextChanged.connect(lambda _: self.refresh())
        top = QHBoxLayout()
        top.addWidget(self.root_edit, 1)
        top.addWidget(browse)
        top.addWidget(self.subset_box)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["track", "subset", "kind"])
        self.tree.setRootIsDecorated(False)
        self.tree.itemDoubleClicked.connect(lambda *_: self._open())
        self.message = QLabel("")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._open)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        if root:
            self.refresh()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset root", self.root_edit.text())
        if folder:
            self.root_edit.setText(folder)
            self.refresh()

    def refresh(self) -> None:
        self.tree.clear()
        root = self.root_edit.text().strip()
        if not root:
            return
        subset = None if self.subset_box.currentText() == "all" else self.subset_box.currentText()
        try:
            references = list_dataset(root, subset)
        except InputError as error:
            self.message.setText(str(error))
            return
        for reference in references:
            item = QTreeWidgetItem([reference.name, reference.subset or "—", reference.kind])
            item.setData(0, Qt.ItemDataRole.UserRole, str(reference.path))
            self.tree.addTopLevelItem(item)
        self.tree.resizeColumnToContents(0)
        self.message.setText(f"{len(references)} tracks in {Path(root).name}")

    def _open(self) -> None:
        item = self.tree.currentItem()
        if item is None:
            return
        self.track_chosen.emit(item.data(0, Qt.ItemDataRole.UserRole))
        self.accept()


class ShortcutsDialog(QDialog):
    def __init__(self, shortcuts: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(len(shortcuts), 2)
        table.setHorizontalHeaderLabels(["keys", "action"])
        table.verticalHeader().hide()
        for row, (keys, action) in enumerate(shortcuts):
            table.setItem(row, 0, QTableWidgetItem(keys))
            table.setItem(row, 1, QTableWidgetItem(action))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(460, 420)
