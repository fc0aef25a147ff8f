"""Re-running a paper's experiments and writing its tables and figures.

Papers live in `explorer/reproduce/<module>.py` and are imported only when asked for. Each module
provides `reproduce_job(options: ReproduceOptions) -> Job[dict]` returning a summary (what was
written, and the headline numbers). A paper whose module is not there yet is an InputError.
The `explorer reproduce` command over these is `explorer/cli/reproduce.py`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from explorer.errors import InputError

# paper name -> module under explorer.reproduce
PAPERS = {
    "taslp2020": "taslp2020",
    "eusipco2020": "eusipco2020",
    "drdnn": "drdnn",
    "naive-ae": "naive_ae",
}


@dataclass(frozen=True)
class ReproduceOptions:
    """`seeds` None means the paper's default; `pretrained` uses the shipped demo weights
    instead of training, where the paper's models have them."""

    data: str
    out: Path
    quick: bool = False
    seeds: int | None = None
    device: str = "auto"
    pretrained: bool = False


def load_paper(name: str):
    """The module reproducing paper `name`; InputError if unknown or not implemented yet."""
    if name not in PAPERS:
        raise InputError(f"unknown paper '{name}' (known: {', '.join(PAPERS)})")
    module_name = f"explorer.reproduce.{PAPERS[name]}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise InputError(f"reproducing '{name}' is not implemented yet") from None
        raise
