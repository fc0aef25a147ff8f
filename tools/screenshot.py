"""Save a screenshot of the main window for the README: docs/screenshot.png.

    .venv/bin/python tools/screenshot.py [--out docs/screenshot.png] [--checkpoint CKPT]
                                         [--train-quick] [--model oracle-irm]

Starts itself under Xvfb when there is no display (xvfb-run, or an Xvfb it starts), opens the
demo, separates it with an oracle mask, and, when a DAE-family model is available (a shipped
`dae`/`sf` weight, `--checkpoint`, or `--train-quick`, which trains a tiny SF for a minute),
separates with it too and computes the couplings (NCA) of one block, so the picture shows the
spectrograms, the mask editor, the couplings matrices and the metrics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1800, 1100)


def ensure_display() -> None:
    """Re-run this script under Xvfb when no X display is set."""
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return
    if shutil.which("xvfb-run") is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # still renders; fonts may differ
        return
    command = [
        "xvfb-run",
        "-a",
        "-s",
        f"-screen 0 {SIZE[0] + 100}x{SIZE[1] + 100}x24",
        sys.executable,
        *sys.argv,
    ]
    sys.exit(subprocess.call(command))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--checkpoint", help="a DAE/MSS-DAE/SF checkpoint for the couplings panel")
    parser.add_argument(
        "--train-quick", action="store_true", help="train a tiny SF on the demo first"
    )
    parser.add_argument("--model", default="oracle-irm", help="the oracle to separate with first")
    parser.add_argument("--mask-shot", help="also save a picture with the mask editor in front")
    parser.add_argument(
        "--iterations", type=int, default=150, help="NCA iterations (the paper: 600)"
    )
    args = parser.parse_args()
    ensure_display()
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from explorer.gui.app import application
    from explorer.gui.main_window import MainWindow
    from explorer.models import registry

    app: QApplication = application()
    settings_folder = tempfile.mkdtemp(prefix="explorer-screenshot-")
    window = MainWindow(
        settings=QSettings(str(Path(settings_folder) / "settings.ini"), QSettings.Format.IniFormat)
    )
    window.resize(*SIZE)
    window.show()

    def settle(limit: float = 900.0) -> None:
        started = time.monotonic()
        while window.jobs and time.monotonic() - started < limit:
            app.processEvents()
            time.sleep(0.02)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)

    window.open_input("demo")
    settle()
    window.model_box.setCurrentText(args.model)
    window.separate()
    settle()
    checkpoint = args.checkpoint
    if checkpoint is None and args.train_quick:
        checkpoint = str(Path(settings_folder) / "sf-quick.pt")
        window.training.kind_box.setCurrentText("sf")
        window.training.data_box.setEditText("demo")
        window.training.epochs_box.setValue(3)
        window.training.steps_box.setValue(40)
        window.training.output_edit.setText(checkpoint)
        window.start_training(window.training.parameters())
        settle()
    learned = None
    if checkpoint and window.add_checkpoint(checkpoint):
        learned = checkpoint
    else:
        for name in ("sf", "dae"):  # SF first: it has a mask to edit as well
            if (registry.RESOURCES / f"{name}.pt").is_file():
                learned = name
                break
    if learned:
        window.separate(learned)
        settle()
        window.matrix.iterations_box.setValue(args.iterations)
        window.matrix.frames_box.setValue(120)
        window.session.select(block=2)
        window.compute_nca()
        settle()
        window.matrix_dock.raise_()
        if window.matrix.views:
            rows = window.matrix.views[0].matrix.values.shape[0]
            window.matrix.select_cell(rows // 8, rows // 8)
    else:
        window.matrix_dock.raise_()
    window.metrics_dock.raise_()
    window.compute_metrics(force=True)
    window.seek(2.2)
    settle()
    if args.mask_shot:
        window.mask_dock.raise_()
        settle()
        window.grab().save(args.mask_shot)
        window.matrix_dock.raise_()
        settle()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out))
    print(f"wrote {out} ({window.width()}x{window.height()}); errors: {window.errors or 'none'}")
    window.close()
    shutil.rmtree(settings_folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
