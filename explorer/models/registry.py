"""Model names to separators, and checkpoint I/O.

A checkpoint is a `torch.save` dict of plain data, read back with `weights_only=True` so a
stranger's file cannot run code:

    {"format": 1, "kind": "dae", "config": {...}, "state_dict": {...},
     "provenance": {"data": ..., "epochs": ..., "seed": ..., "final_loss": ...}}

Model families register a loader per kind with `register_kind`; built-in names load shipped
weights from `resources/` or construct oracles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from explorer.audio.io import atomic_output
from explorer.errors import InputError
from explorer.models.base import Separator

CHECKPOINT_FORMAT = 1
RESOURCES = Path(__file__).resolve().parent.parent.parent / "resources"
REQUIRED_KEYS = ("format", "kind", "config", "state_dict", "provenance")

# kind -> function(config dict, state_dict, name, device) -> Separator
Loader = Callable[[dict, dict, str, torch.device], Separator]
_LOADERS: dict[str, Loader] = {}
# built-in name -> function(name, device) -> Separator
_BUILTINS: dict[str, Callable[[str, torch.device], Separator]] = {}
_FAMILIES_LOADED = False


def register_kind(kind: str, loader: Loader) -> None:
    _LOADERS[kind] = loader


def register_builtin(name: str, factory: Callable[[str, torch.device], Separator]) -> None:
    _BUILTINS[name] = factory


def builtin_names() -> list[str]:
    _register_families()
    return sorted(_BUILTINS)


def save_checkpoint(
    path: str | Path,
    kind: str,
    config: dict,
    state_dict: dict[str, torch.Tensor],
    provenance: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically. `config` and `provenance` must be JSON-serialisable."""
    json.dumps(config), json.dumps(provenance)  # fail early, before touching the disk
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": kind,
        "config": config,
        "state_dict": {key: value.detach().cpu() for key, value in state_dict.items()},
        "provenance": provenance,
    }
    if extra:
        payload["extra"] = extra
    path = Path(path)
    with atomic_output(path) as temporary:
        torch.save(payload, temporary)
    return path


def load_checkpoint(
    path: str | Path, expected_kind: str | tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Read and validate a checkpoint; InputError with a clear message on any problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such checkpoint: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise InputError(
            f"cannot read checkpoint {path.name}: corrupt, truncated or not a checkpoint ({first_line})"
        ) from None
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED_KEYS):
        raise InputError(
            f"{path.name} is not an explorer checkpoint (missing {', '.join(k for k in REQUIRED_KEYS if not isinstance(payload, dict) or k not in payload)})"
        )
    if payload["format"] != CHECKPOINT_FORMAT:
        raise InputError(
            f"{path.name} has checkpoint format {payload['format']}; this explorer reads format {CHECKPOINT_FORMAT}"
        )
    if expected_kind is not None:
        allowed = (expected_kind,) if isinstance(expected_kind, str) else expected_kind
        if payload["kind"] not in allowed:
            raise InputError(
                f"{path.name} is a '{payload['kind']}' checkpoint, expected {' or '.join(allowed)}"
            )
    return payload


def shipped_checkpoint(file_name: str, kind: str, train_hint: str) -> dict[str, Any]:
    """The demo weights `resources/<file_name>`, validated as `kind`; InputError naming the
    training command (`train_hint`, without `--out`) when they are not shipped."""
    path = RESOURCES / file_name
    if not path.is_file():
        raise InputError(
            f"the demo weights for '{kind}' are not shipped in {RESOURCES}; train them with "
            f"'{train_hint} --out {path}' or pass a checkpoint path"
        )
    return load_checkpoint(path, kind)


def separator_from_checkpoint(
    path: str | Path, device: torch.device, name: str | None = None
) -> Separator:
    _register_families()
    payload = load_checkpoint(path)
    kind = payload["kind"]
    if kind not in _LOADERS:
        raise InputError(
            f"{Path(path).name}: unknown model kind '{kind}' (known: {', '.join(sorted(_LOADERS))})"
        )
    try:
        return _LOADERS[kind](payload["config"], payload["state_dict"], name or str(path), device)
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise InputError(
            f"{Path(path).name}: checkpoint does not fit a '{kind}' model ({first_line})"
        ) from None


def load_separator(model: str, device: torch.device) -> Separator:
    """A built-in name (`oracle-irm`, `dae`, ...) or a checkpoint path -> a Separator."""
    _register_families()
    if model in _BUILTINS:
        return _BUILTINS[model](model, device)
    path = Path(model).expanduser()
    if path.suffix in (".pt", ".pth", ".ckpt") or path.exists():
        return separator_from_checkpoint(path, device)
    raise InputError(
        f"unknown model '{model}' (built-in: {', '.join(sorted(_BUILTINS))}; or a checkpoint path)"
    )


def _register_families() -> None:
    """Import the model families once; each registers its kinds and built-in names.
    (A flag, not `_BUILTINS`: a family imported directly fills `_BUILTINS` before this runs.)"""
    global _FAMILIES_LOADED
    if _FAMILIES_LOADED:
        return
    _FAMILIES_LOADED = True
    from explorer.models import oracle

    for mask in ("ibm", "irm"):
        register_builtin(
            f"oracle-{mask}",
            lambda name, device, mask=mask: oracle.OracleSeparator(
                oracle.OracleConfig(mask=mask), name, device
            ),
        )
    for module in ("dae", "modcos", "drdnn", "naive_ae"):
        try:
            __import__(f"explorer.models.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"explorer.models.{module}":
                raise
