"""A workaround for reference-count bugs of the pinned PySide6 (6.12.0) on CPython 3.11.

Measured here (tests/gui/test_qt_fixes.py):
- `SignalInstance.emit()` called from Python returns `True` without a new reference, so each
  emit takes one reference away from the `True` singleton;
- each call of a Python slot from a C++ signal (a checkbox toggled, a timer, pyqtgraph's range
  changes) takes one reference away from `None`.
A GUI does this thousands of times a minute; when a count reaches zero CPython aborts
("deallocating None" / "deallocating True or False"), at the latest while finalizing.

The fix measures both leaks once and, only when one is there, gives `None`, `True` and
`False` a reserve of 2**40 references: at a thousand calls per second that lasts for decades.
From CPython 3.12 on these objects are immortal and nothing is done. Remove this module once
PySide6 is upgraded past the bug (the test says when).
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

RESERVE = 1 << 40
_applied = False


class _Probe(QObject):
    ping = Signal()


def measure_leaks(calls: int = 10) -> dict[str, int]:
    """References to `True` lost by `calls` Python emits, and to `None` lost by `calls`
    C++-signal-to-Python-slot calls (0 when the bindings are sound)."""
    probe = _Probe()
    true_before = sys.getrefcount(True)
    for _ in range(calls):
        probe.ping.emit()
    true_lost = true_before - sys.getrefcount(True)
    probe.objectNameChanged.connect(lambda name: None)
    none_before = sys.getrefcount(None)
    for index in range(calls):
        probe.setObjectName(f"probe-{index}")  # a C++ signal calling a Python slot
    none_lost = none_before - sys.getrefcount(None)
    return {"true": max(0, true_lost), "none": max(0, none_lost - 2)}  # 2: loop noise


def guard_singleton_refcounts() -> bool:
    """Apply the reserve when this PySide6 leaks; returns whether it is applied."""
    global _applied
    if _applied or sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return _applied
    leaks = measure_leaks()
    if not any(leaks.values()):
        return False
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += RESERVE
    _applied = True
    return True
