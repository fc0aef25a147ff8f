"""What keeps the GUI thread responsive: the Pacer (one piece of deferred work per event-loop
pass), the core left to the GUI, the launch-time imports, and the spectrogram panel's spare
plots and shared axes. The stall figures themselves are measured in benchmarks/bench_gui.py."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from explorer.gui import responsiveness, spectra
from explorer.gui.pacing import Pacer
from explorer.gui.panels.spectrogram import SPARE_PLOTS, SpectrogramPanel


def test_pacer_runs_pieces_in_order_with_the_event_loop_between_them(qtbot):
    pacer = Pacer()
    order: list[str] = []

    def first() -> None:
        order.append("first")
        # Posted by the first piece: must run before the second piece does.
        QTimer.singleShot(0, lambda: order.append("event loop"))

    pacer.post(first)
    pacer.post(lambda: order.append("second"))
    pacer.post(lambda: order.append("third"))
    assert order == [] and len(pacer) == 3  # nothing runs inside post()
    qtbot.waitUntil(lambda: len(order) == 4, timeout=5000)
    assert order == ["first", "event loop", "second", "third"]
    assert len(pacer) == 0


def test_pacer_keeps_going_after_a_piece_raises_and_clear_drops_the_rest(qtbot):
    pacer = Pacer()
    ran: list[int] = []

    def broken() -> None:
        raise RuntimeError("a bug in one piece")

    with qtbot.capture_exceptions() as caught:  # what Qt's event loop would report
        pacer.post(broken)
        pacer.post(lambda: ran.append(1))
        qtbot.waitUntil(lambda: ran == [1], timeout=5000)
    assert [str(error[1]) for error in caught] == ["a bug in one piece"]
    pacer.post(lambda: ran.append(2))
    pacer.clear()
    qtbot.wait(50)
    assert ran == [1] and len(pacer) == 0


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (8, 7), (64, 63)])
def test_compute_threads_leave_one_core_to_the_gui(cores, threads):
    assert responsiveness.compute_threads(cores) == threads


def test_reserve_gui_core_limits_torch_and_blas():
    import torch
    from threadpoolctl import threadpool_info

    threads = responsiveness.reserve_gui_core()
    assert threads == responsiveness.compute_threads()
    assert torch.get_num_threads() == threads
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == threads for pool in blas)


def test_warmup_imports_what_workers_would_import_on_first_use():
    responsiveness.start_warmup()  # (another test's window may have started it already)
    assert responsiveness.start_warmup() is None  # once per process
    responsiveness._thread.join(120)
    assert not responsiveness.warming_up()
    assert "torch._dynamo" in sys.modules and "fast_bss_eval" in sys.modules
    # The collector was off during the import only, and what it imported is frozen.
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_freeze_heap_takes_the_imported_objects_out_of_full_collections():
    import torch  # noqa: F401 - the heap the app starts with

    responsiveness.freeze_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 100_000  # torch alone brings hundreds of thousands of tracked objects
    assert len(gc.get_objects(generation=2)) < frozen  # what a full collection still walks


def _image(seconds: float = 2.0) -> spectra.Spectrogram:
    rate = 22050
    noise = np.random.default_rng(0).standard_normal(int(rate * seconds)).astype(np.float32)
    return spectra.compute(0.1 * noise[None], rate)


def test_spare_plots_are_made_ahead_and_used_for_new_rows(qtbot):
    panel = SpectrogramPanel()
    qtbot.addWidget(panel)
    panel.incremental = True
    panel.resize(900, 700)
    panel.show()
    panel.schedule_spares()
    qtbot.waitUntil(lambda: len(panel._spares) == SPARE_PLOTS, timeout=10000)
    spares = list(panel._spares)
    image = _image()
    panel.set_spectrograms(
        [("mixture", "mixture", image)]
        + [(f"true:{stem}", stem, image) for stem in ("vocals", "drums")]
    )
    qtbot.waitUntil(lambda: not panel._pending and len(panel._placed) == 2, timeout=10000)
    placed = list(panel._placed.values())
    assert all(any(plot is spare for spare in spares) for plot in placed)
    # The pool fills up again for the next result.
    qtbot.waitUntil(lambda: len(panel._spares) == SPARE_PLOTS, timeout=10000)


def test_axes_are_shared_time_under_the_bottom_row_frequency_in_the_left_column(qtbot):
    panel = SpectrogramPanel()
    qtbot.addWidget(panel)
    image = _image()
    stems = ("vocals", "drums", "bass")
    panel.set_spectrograms(
        [("mixture", "mixture", image)]
        + [(f"true:{stem}", stem, image) for stem in stems]
        + [(f"estimate:{stem}", stem, image) for stem in stems]
    )
    shown = {
        key: (plot.getAxis("bottom").isVisible(), plot.getAxis("left").isVisible())
        for key, plot in panel._placed.items()
    }
    for stem in stems:
        last = stem == stems[-1]
        assert shown[f"estimate:{stem}"] == (last, True)  # left column
        assert shown[f"true:{stem}"] == (last, False)
    assert not panel.master.getAxis("bottom").isVisible()
    # With the rows gone, the mixture carries the time axis again.
    panel.clear()
    assert panel.master.getAxis("bottom").isVisible()


def test_mask_and_couplings_panels_fit_a_narrow_dock(qtbot):
    """Their controls wrap into rows: one row made them at least 1014 and 1275 px wide, so
    a dock beside the spectrograms scrolled the plot sideways out of sight."""
    from explorer.gui.panels.mask import MaskPanel
    from explorer.gui.panels.matrix import MatrixPanel

    mask, matrix = MaskPanel(), MatrixPanel()
    qtbot.addWidget(mask)
    qtbot.addWidget(matrix)
    matrix.set_nca_available(False, "NCA needs a DAE, MSS-DAE or SF model: separate with one")
    matrix.view_box.addItem("modcos kernel magnitude responses (dB), a long probe title")
    assert mask.minimumSizeHint().width() <= 600
    assert matrix.minimumSizeHint().width() <= 600


def test_four_couplings_matrices_fit_side_by_side_in_a_narrow_dock(qtbot):
    """Each title's SNRs go on a short second line: on one line they set each plot's minimum
    width, and the 2 x 2 grid needed 899 px, wider than the dock (its right column cut off);
    now 530 px."""
    from PySide6.QtCore import Qt

    from explorer.gui.panels.matrix import MatrixPanel
    from explorer.models.probes import Matrix

    panel = MatrixPanel()
    qtbot.addWidget(panel)
    metrics = {"tod_r": 2.21, "snr_to_model_db": -23.6, "snr_to_true_db": -44.3}
    values = np.eye(64, dtype=np.float32)
    panel.set_nca(
        {
            name: Matrix(name, values, metrics=metrics)
            for name in ("student", "compositional", "linear", "identity")
        }
    )
    qtbot.waitUntil(lambda: len(panel.views) == 4, timeout=10000)
    assert all("TOD-R 2.21" in view.plot.titleLabel.text for view in panel.views)
    minimum = panel.graphics.ci.effectiveSizeHint(Qt.SizeHint.MinimumSize).width()
    assert minimum <= 560  # beside the spectrograms at 1600 px, a dock is ~600 px wide
