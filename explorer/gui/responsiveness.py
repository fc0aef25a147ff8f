"""Keeping the GUI thread responsive while workers compute: a core left to it, and the
modules that workers would import on first use imported ahead, in the background.

Measured here (2 cores): with torch and OpenBLAS using every core, a worker's threads took
the GUI thread's core too and drawing a result stalled 2x longer; and a worker's first
`torch.optim.Adam` imports `torch._dynamo` (about 800 modules, 1.6 s), whose unmarshalling
and compiling holds the GIL for up to ~240 ms at a time (the first NCA or training run froze
the window). The window starts the import once the first track is drawn: during the launch
it competed with decoding the demo (4.3 -> 6.9 s to the first drawn demo).
"""

from __future__ import annotations

import gc
import os
import threading

_thread: threading.Thread | None = None
_frozen = False


def compute_threads(cores: int | None = None) -> int:
    """Threads for workers' torch and BLAS: every core but one (the GUI's), at least one."""
    return max(1, (cores or os.cpu_count() or 1) - 1)


def reserve_gui_core() -> int:
    """Limit torch's intra-op threads and the BLAS pools to `compute_threads()`; returns it."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = compute_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")
    return threads


def _import_lazy_modules() -> None:
    import fast_bss_eval  # noqa: F401 - the first metrics run
    import torch

    parameter = torch.zeros(1, requires_grad=True)
    torch.optim.Adam([parameter])  # Optimizer.__init__ imports torch._dynamo lazily


def freeze_heap() -> None:
    """Move every object alive now (the imported modules: torch, Qt, pyqtgraph) out of the
    collector's reach. A full collection walks the whole tracked heap with the GIL held:
    measured 80-144 ms per collection here once torch is in, a stall for every thread.
    Once per process: the collection before the freeze costs about as much."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _run() -> None:
    # The import makes long-lived objects, not garbage: no collections during it (each was a
    # full-heap stall), then they join the frozen heap.
    enabled = gc.isenabled()
    gc.disable()
    try:
        _import_lazy_modules()
    except Exception:  # noqa: BLE001 - only a head start: a worker imports it again if needed
        pass
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def start_warmup() -> threading.Thread | None:
    """Start the warm-up once per process; the thread, or None when already started."""
    global _thread
    if _thread is not None:
        return None
    _thread = threading.Thread(target=_run, name="explorer-warmup", daemon=True)
    _thread.start()
    return _thread


def warming_up() -> bool:
    """Whether the warm-up thread is still importing."""
    return _thread is not None and _thread.is_alive()
