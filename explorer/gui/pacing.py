"""One queue for the GUI thread's deferred work: one piece per event-loop pass.

Drawing a result is split into pieces (a spectrogram row, a panel, the first mask) so that no
pass holds the GUI thread long. Separate timers per panel would fire in the same pass and add
up (measured: two pieces and three paints, 49 ms, in one pass); one queue runs one piece, then
lets Qt paint and serve input before the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer


class Pacer(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = 8) -> None:
        super().__init__(parent)
        self._queue: deque[Callable[[], None]] = deque()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        # Long enough for the paint a piece causes, and the user's input, to come in between.
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._run_one)

    def post(self, piece: Callable[[], None]) -> None:
        """Run `piece()` in a later pass, after every piece posted before it."""
        self._queue.append(piece)
        if not self._timer.isActive():
            self._timer.start()

    def __len__(self) -> int:
        return len(self._queue)

    def clear(self) -> None:
        self._queue.clear()
        self._timer.stop()

    def _run_one(self) -> None:
        if self._queue:
            piece = self._queue.popleft()
            if self._queue:
                self._timer.start()  # before running: a piece that raises keeps the queue going
            piece()
