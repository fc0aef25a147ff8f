"""The desktop app (PySide6 + pyqtgraph). Qt is imported only under this package."""

from explorer.gui.qt_fixes import guard_singleton_refcounts

guard_singleton_refcounts()  # before the app emits anything: see qt_fixes
