"""Training checkpoints: the state of a run after an epoch, on disk, so a run can resume.

A checkpoint folder holds two files, each written beside its final name and moved over it with
``os.replace`` (a reader sees the old file or the new one, never half of one):

- ``last.safetensors``: everything the loop needs to go on after epoch N, in ONE file so it can
  never be half updated: tensors (``model/<name>`` the last weights, ``best/<name>`` the best
  epoch's, ``optimizer/<param index>/<key>`` the optimizer's moments and step counts, ``rng/<name>``
  the shuffle generator's and torch's random states) and, in the safetensors header's metadata
  under ``"state"``, one JSON document with the rest (epoch, history, best-epoch bookkeeping, the
  optimizer's parameter groups and plain numbers, the schedule's and the AMP scaler's state, and
  the fingerprint of the design, settings and data it belongs to).
- ``best.safetensors``: the best epoch's weights under their state-dict names (the format of a
  bundle's ``model.safetensors``), for whoever wants the best model without resuming.

No pickle anywhere and never ``torch.load``: a checkpoint folder may come from anywhere, and
reading one must never run code. Non-finite floats (the plateau schedule's "worse than anything"
is infinity) are written as ``{"$float": "inf"}`` so the JSON stays standard.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from builder.errors import TrainingError

LAST_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"
FORMAT = "builder-checkpoint"
VERSION = 1
# Settings that change nothing a resumed run computes: a new time limit may be given on resume.
_FREE_SETTINGS = ("max_minutes",)
_STATE_KEYS = {"epoch", "finished", "step", "best_epoch", "best_val_loss", "history", "optimizer", "schedule",
               "scaler", "fingerprint", "saved_at"}  # what a resume reads
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")  # a memory address in a repr: differs between processes


@dataclass
class Checkpoint:
    """One ``last.safetensors`` read back: its tensors by name and its JSON state."""

    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors saved under ``prefix/``, with the prefix removed from their names."""
        cut = len(prefix) + 1
        return {name[cut:]: value for name, value in self.tensors.items() if name.startswith(prefix + "/")}


@dataclass
class CheckpointInfo:
    """What a page needs to offer "Resume from epoch N" (read from the header alone).

    Attributes:
        epoch: the last finished epoch (the run resumes at ``epoch + 1``).
        epochs: the run's planned number of epochs.
        finished: ``"completed"`` or ``"early_stopping"`` when the run had ended by itself (then
            there is nothing to resume), ``None`` when it was interrupted.
        best_epoch: the epoch whose weights ``best.safetensors`` holds.
        history: ``History.to_dict()`` up to ``epoch`` (the curve so far).
        saved_at: seconds since the epoch (``time.time()``) when it was written.
    """

    epoch: int
    epochs: int
    finished: str | None
    best_epoch: int | None
    history: dict[str, Any]
    saved_at: float

    @property
    def resumable(self) -> bool:
        """True when the run stopped before it ended by itself."""
        return self.finished is None


# ----------------------------------------------------------------------------------------------
# Writing and reading


def write_checkpoint(folder: Path, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any],
                     best: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write ``last.safetensors`` (and ``best.safetensors`` first, when ``best`` is given).

    Args:
        folder: the checkpoint folder (created if missing).
        tensors: every tensor of the state, by name (moved to the CPU and copied here).
        state: the JSON part (plain values; tuples become lists, non-finite floats are tagged).
        best: the best weights by state-dict name, when they changed this epoch.

    Raises:
        TrainingError: the folder cannot be written (full disk, no permission).
    """
    folder = Path(folder)
    state = {**state, "format": FORMAT, "version": VERSION, "saved_at": time.time()}
    try:
        if best is not None:  # before last: a crash in between leaves last's own best copy in charge
            meta = {"format": FORMAT, "epoch": json.dumps(state.get("best_epoch"))}
            _save_atomically(folder / BEST_FILE, best, meta)
        _save_atomically(folder / LAST_FILE, tensors, {"format": FORMAT, "state": dumps(state)})
    except (OSError, SafetensorError) as exc:  # safetensors reports its own I/O errors
        raise _not_written(folder, exc) from exc


def write_best(folder: Path, best: Mapping[str, torch.Tensor], best_epoch: int | None) -> None:
    """Rewrite ``best.safetensors`` alone (a resumed run makes it agree with ``last`` again).

    Raises:
        TrainingError: the folder cannot be written.
    """
    try:
        _save_atomically(Path(folder) / BEST_FILE, best, {"format": FORMAT, "epoch": json.dumps(best_epoch)})
    except (OSError, SafetensorError) as exc:
        raise _not_written(folder, exc) from exc


def _not_written(folder: Path, exc: Exception) -> TrainingError:
    reason = getattr(exc, "strerror", None) or str(exc)
    return TrainingError(f"The checkpoint could not be written to {folder} ({reason}): free some disk "
                         "space or choose another folder.")


def read_checkpoint(folder: Path) -> Checkpoint:
    """Read ``last.safetensors`` of ``folder``: tensors on the CPU and the JSON state.

    Raises:
        TrainingError: no checkpoint there, or the file is damaged or not a checkpoint.
    """
    path = Path(folder) / LAST_FILE
    if not path.is_file():
        raise TrainingError(f"There is no checkpoint to resume in {folder}: train the run from the start.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        state = loads(meta["state"]) if meta.get("format") == FORMAT else None
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise TrainingError(f"The checkpoint in {folder} is damaged ({exc}): train the run from the start.") from None
    if not isinstance(state, dict) or state.get("version") != VERSION or not _STATE_KEYS <= state.keys():
        raise TrainingError(f"{path} is not a checkpoint this version can resume: train the run from the start.")
    return Checkpoint(tensors, state)


def checkpoint_info(folder: Path) -> CheckpointInfo | None:
    """The epoch, history and finished flag of the checkpoint in ``folder``; None if it has none.

    Reads only the file's header (no tensors), so a page can call it on every rerun.

    Raises:
        TrainingError: the file is there but damaged.
    """
    path = Path(folder) / LAST_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            state = loads((handle.metadata() or {})["state"])
        return CheckpointInfo(epoch=state["epoch"], epochs=state["fingerprint"]["settings"]["epochs"],
                              finished=state["finished"], best_epoch=state["best_epoch"],
                              history=state["history"], saved_at=state["saved_at"])
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as exc:
        raise TrainingError(f"The checkpoint in {folder} is damaged ({exc}).") from None


def _save_atomically(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write beside ``path``, flush it to the disk, then swap it in with one ``os.replace``."""
    # Plain CPU copies: safetensors refuses tensors that share memory or live on a GPU.
    plain = {name: value.detach().to("cpu", copy=True).contiguous() for name, value in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    save_file(plain, str(partial), metadata=metadata)
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())  # the bytes are on the disk before the name points at them
    os.replace(partial, path)


# ----------------------------------------------------------------------------------------------
# Optimizer state <-> tensors + JSON


def flatten_optimizer(state_dict: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``optimizer/<index>/<key>``) and plain JSON."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        plain[str(index)] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                plain[str(index)][key] = value  # e.g. an SGD momentum buffer that is None
    return tensors, {"state": plain, "param_groups": state_dict["param_groups"]}


def unflatten_optimizer(tensors: Mapping[str, torch.Tensor], plain: Mapping[str, Any],
                        current: torch.optim.Optimizer) -> dict[str, Any]:
    """Inverse of ``flatten_optimizer`` (``tensors`` without the ``optimizer/`` prefix).

    ``current`` is the freshly made optimizer the state goes into: tuples (Adam's ``betas``) come
    back as tuples, and the kernel choice (fused, foreach) stays the one made for this device.
    """
    state: dict[int, dict[str, Any]] = {int(index): dict(values) for index, values in plain["state"].items()}
    for name, value in tensors.items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    groups = []
    for saved, fresh in zip(plain["param_groups"], current.param_groups, strict=False):
        group = dict(saved)
        for key, value in fresh.items():
            if key in ("fused", "foreach", "capturable"):
                group[key] = value
            elif isinstance(value, tuple) and isinstance(group.get(key), list):
                group[key] = tuple(group[key])
        groups.append(group)
    return {"state": state, "param_groups": groups}


# ----------------------------------------------------------------------------------------------
# Random states


def rng_states(shuffle: torch.Generator) -> dict[str, torch.Tensor]:
    """The random states that decide what a run does next, as uint8 tensors: the loop's shuffle
    generator (batch order, image augmentation) and torch's default generator of the device
    (dropout draws)."""
    states = {"shuffle": shuffle.get_state(), "torch": torch.get_rng_state()}
    if shuffle.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(shuffle.device)
    elif shuffle.device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def set_rng_states(shuffle: torch.Generator, states: Mapping[str, torch.Tensor]) -> None:
    """Inverse of ``rng_states`` (on a generator of the same device type)."""
    shuffle.set_state(states["shuffle"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], shuffle.device)
    elif "mps" in states:
        torch.mps.set_rng_state(states["mps"])


# ----------------------------------------------------------------------------------------------
# Fingerprints: a checkpoint resumes only the run it was written by


def fingerprint(model: nn.Module, arrays: Mapping[str, np.ndarray], settings: Mapping[str, Any],
                extra: Mapping[str, Any]) -> dict[str, Any]:
    """What must be equal for a checkpoint to resume a run: design, settings and data.

    Args:
        model: the network before training (its structure and weight shapes are compared).
        arrays: the training and validation arrays (their shapes, types and a SHA-256 of their
            bytes: the same shapes with other values are other data).
        settings: ``TrainConfig.to_dict()``.
        extra: anything else that changes the run (task, device type, keep_last).
    """
    digest = hashlib.sha256()
    shapes = {}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        shapes[name] = [list(array.shape), str(array.dtype)]
        digest.update(f"{name}{array.shape}{array.dtype}".encode())
        digest.update(memoryview(array).cast("B"))
    weights = {name: list(value.shape) for name, value in model.state_dict().items()}
    design = hashlib.sha256(_ADDRESS.sub("", repr(model)).encode())
    design.update(json.dumps(weights).encode())
    return {
        "design": design.hexdigest(),
        "weights": sum(int(np.prod(shape)) for shape in weights.values()),
        "settings": {k: v for k, v in settings.items() if k not in _FREE_SETTINGS},
        "data": {"shapes": shapes, "sha256": digest.hexdigest()},
        **extra,
    }


def mismatch(saved: Mapping[str, Any], current: Mapping[str, Any], folder: Path) -> str | None:
    """A sentence saying why the checkpoint of ``folder`` is not this run's, or None if it is."""
    current = loads(dumps(current))  # compare as read back: tuples as lists, floats as written
    start = f"The checkpoint in {folder} belongs to another run"
    fix = "resume it with the design, settings and data it was trained with, or start a new run."
    old, new = saved["settings"], current["settings"]
    changed = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    if changed:
        pairs = ", ".join(f"'{k}' {old.get(k)!r} there, {new.get(k)!r} here" for k in changed[:3])
        return f"{start}: its training settings differ ({pairs}); {fix}"
    if saved["design"] != current["design"]:
        return (f"{start}: its design differs ({saved['weights']:,} weights there, {current['weights']:,} "
                f"here, or other layers); {fix}")
    if saved["data"]["shapes"] != current["data"]["shapes"]:
        pairs = ", ".join(f"{k} {_shape(saved['data']['shapes'].get(k))} there, {_shape(v)} here"
                          for k, v in current["data"]["shapes"].items() if saved["data"]["shapes"].get(k) != v)
        return f"{start}: its data has another shape ({pairs}); {fix}"
    if saved["data"]["sha256"] != current["data"]["sha256"]:
        return f"{start}: its data has the same shape but other values; {fix}"
    for key in current.keys() - {"design", "weights", "settings", "data"}:
        if saved.get(key) != current[key]:
            return f"{start}: it was trained with {key} {saved.get(key)!r}, this run has {current[key]!r}; {fix}"
    return None


def _shape(entry: Any) -> str:
    return "none" if entry is None else "x".join(str(n) for n in entry[0]) or "scalar"


# ----------------------------------------------------------------------------------------------
# Strict JSON for floats torch keeps as infinity


def dumps(value: Any) -> str:
    """JSON text of ``value``; tuples become lists and inf/nan become ``{"$float": "inf"}``."""
    return json.dumps(_tag(value), allow_nan=False, separators=(",", ":"))


def loads(text: str) -> Any:
    """Inverse of ``dumps``."""
    return json.loads(text, object_hook=_untag)


def _tag(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}  # 'inf', '-inf', 'nan'
    if isinstance(value, Mapping):
        return {str(k): _tag(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tag(v) for v in value]
    if isinstance(value, torch.Tensor | np.ndarray):
        raise TypeError("tensors belong in the safetensors part of a checkpoint, not its JSON")
    return value


def _untag(value: dict[str, Any]) -> Any:
    if value.keys() == {"$float"}:
        return float(value["$float"])
    return value
