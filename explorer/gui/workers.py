"""Run a Job (a generator yielding Progress, explorer/progress.py) in a worker thread.

`JobRunner.start(factory)` creates a `QThread` and a `JobWorker` in it. The worker calls the
factory in its thread, steps the generator, and forwards each Progress as the `progress`
signal, the generator's return value as `finished`, and any exception as `failed`: a worker
exception never reaches the event loop, so it never kills the app. Cancelling sets a flag; the
worker closes the generator at its next yield (DESIGN.md: cancel = close) and emits
`cancelled`. Signals cross into the GUI thread as queued connections.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from explorer.progress import Job, Progress

JobFactory = Callable[[], Job[Any]]


class JobWorker(QObject):
    progress = Signal(object)  # Progress
    finished = Signal(object)  # the job's result
    failed = Signal(object, str)  # the exception, its formatted traceback
    cancelled = Signal()
    done = Signal()  # after any of the three above

    def __init__(self, factory: JobFactory, name: str) -> None:
        super().__init__()
        self.factory = factory
        self.name = name
        self._home = QThread.currentThread()
        self._cancel = threading.Event()
        self._pause = threading.Event()
        self._pause.set()  # set = running

    def cancel(self) -> None:
        self._cancel.set()
        self._pause.set()

    def set_paused(self, paused: bool) -> None:
        """Hold the job at its next yield (the generator keeps its state)."""
        if paused:
            self._pause.clear()
        else:
            self._pause.set()

    @property
    def paused(self) -> bool:
        return not self._pause.is_set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @Slot()
    def run(self) -> None:
        job = None
        try:
            job = self.factory()
            while True:
                if self._cancel.is_set():
                    job.close()
                    self.cancelled.emit()
                    return
                try:
                    progress = next(job)
                except StopIteration as stop:
                    self.finished.emit(stop.value)
                    return
                if isinstance(progress, Progress):
                    self.progress.emit(progress)
                self._pause.wait()
        except BaseException as error:  # noqa: BLE001 - every failure becomes a dialog
            if job is not None:
                job.close()
            self.failed.emit(error, traceback.format_exc())
        finally:
            # Home again before `done`: Python owns this object and frees it in the GUI
            # thread once the handle goes, which is only clean for an object living there.
            self.moveToThread(self._home)
            self.done.emit()


class JobHandle(QObject):
    """A running job, living in the GUI thread. It relays the worker's signals (queued across
    threads, since this object belongs to the GUI thread), so plain functions and lambdas
    connected to the handle's signals run in the GUI thread. Keep it until `done`."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object, str)
    cancelled = Signal()
    done = Signal()

    def __init__(self, worker: JobWorker, thread: QThread, parent: QObject | None = None) -> None:
        # With a parent, Qt owns the handle: Python's garbage collector cannot delete it in
        # the middle of one of its own signals (that corrupts memory); `release()` does it.
        super().__init__(parent)
        self.worker = worker
        self.thread = thread
        worker.progress.connect(self._relay_progress)
        worker.finished.connect(self._relay_finished)
        worker.failed.connect(self._relay_failed)
        worker.cancelled.connect(self._relay_cancelled)
        worker.done.connect(self._relay_done)

    @Slot(object)
    def _relay_progress(self, progress: Progress) -> None:
        self.progress.emit(progress)

    @Slot(object)
    def _relay_finished(self, result: Any) -> None:
        self.finished.emit(result)

    @Slot(object, str)
    def _relay_failed(self, error: BaseException, trace: str) -> None:
        self.failed.emit(error, trace)

    @Slot()
    def _relay_cancelled(self) -> None:
        self.cancelled.emit()

    @Slot()
    def _relay_done(self) -> None:
        self.done.emit()

    @property
    def name(self) -> str:
        return self.worker.name

    def cancel(self) -> None:
        self.worker.cancel()

    def set_paused(self, paused: bool) -> None:
        self.worker.set_paused(paused)

    def wait(self, milliseconds: int = 10000) -> bool:
        return self.thread.wait(milliseconds)

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def release(self) -> None:
        """After `done`: wait for the thread, then let Qt delete the thread and the handle
        from the event loop (never from inside a signal)."""
        self.thread.wait(5000)
        self.thread.deleteLater()
        self.deleteLater()


def start_job(factory: JobFactory, name: str, parent: QObject | None = None) -> JobHandle:
    """Start `factory()` in a new thread. Connect to the handle's signals right away (they
    arrive queued, so nothing is missed before the event loop runs again)."""
    thread = QThread(parent)
    thread.setObjectName(f"job:{name}")
    worker = JobWorker(factory, name)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit from the worker's thread. Queued, it would wait for the GUI thread, which
    # may be the one blocked in `wait()` (shutdown), and the thread would never end.
    worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    handle = JobHandle(worker, thread, parent)  # the worker is Python's: never deleteLater
    thread.start()
    return handle
