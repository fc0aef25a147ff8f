"""Figures of analysis results, written as PNG files (matplotlib, no display needed).

`explorer nca --out` and the paper reproductions draw their coupling matrices with the same
`plot_matrix`, so it lives here, below both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_matrix(path: Path, matrix: np.ndarray, title: str) -> Path:
    """A matrix as a PNG (symmetric colour range, output bins down, input bins across)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    from explorer.audio.io import atomic_output

    limit = float(np.percentile(np.abs(matrix), 99.5)) or 1.0
    figure, axes = pyplot.subplots(figsize=(5, 4.5), dpi=110)
    image = axes.imshow(
        matrix, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest", origin="upper"
    )
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("input bin")
    axes.set_ylabel("output bin")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png")
    pyplot.close(figure)
    return path
