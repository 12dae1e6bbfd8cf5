"""Which device trains the model, and why, in words an analyst can read.

``choose_device`` turns a preference (``auto | cpu | cuda | mps``) into a ``DeviceChoice``: the
``torch.device``, a label for the UI ("GPU: NVIDIA H100 80GB HBM3, 79 GB"), the reason it was picked
and the mixed-precision dtype the training loop should autocast to (``None`` = full float32).

The CPU wheel this project pins has no GPU support; users with a GPU install the CUDA build of the
same torch version, and the same code then picks the GPU on its own.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from builder.errors import SpecError, TrainingError

log = logging.getLogger(__name__)

DEVICE_PREFERENCES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DeviceChoice:
    """The device training runs on, as decided by ``choose_device``.

    Attributes:
        device: where the model and the data live during training.
        label: short name for the UI, e.g. "CPU, 2 threads" or "GPU: NVIDIA H100 80GB HBM3, 79 GB".
        reason: why this device, in plain words, e.g. "no GPU found, training on the CPU".
        amp_dtype: dtype for ``torch.autocast`` (mixed precision), or ``None`` for plain float32.
    """

    device: torch.device
    label: str
    reason: str
    amp_dtype: torch.dtype | None


def choose_device(preference: str = "auto") -> DeviceChoice:
    """Pick the training device.

    ``auto`` prefers a CUDA GPU, then an Apple GPU (MPS), then the CPU. Naming a GPU that this
    machine does not have is an error rather than a silent fall-back, so a user who asked for speed
    is told why they do not get it.

    Args:
        preference: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.

    Returns:
        The chosen device with its label, reason and mixed-precision dtype.

    Raises:
        SpecError: ``preference`` is not one of the four names.
        TrainingError: a GPU was asked for but is not available.
    """
    if preference not in DEVICE_PREFERENCES:
        choices = ", ".join(DEVICE_PREFERENCES)
        raise SpecError(f"The device must be one of {choices}; got {preference!r}. Try auto.")
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(
                "A CUDA GPU was asked for, but none is available on this machine "
                "(or this torch build has no CUDA support): choose device auto or cpu."
            )
        return _cuda_choice("CUDA GPU chosen in the settings")
    if preference == "mps":
        if not _mps_available():
            raise TrainingError(
                "An Apple GPU (MPS) was asked for, but none is available on this machine: "
                "choose device auto or cpu."
            )
        return _mps_choice("Apple GPU (MPS) chosen in the settings")
    if preference == "cpu":
        return _cpu_choice("CPU chosen in the settings")
    if torch.cuda.is_available():
        return _cuda_choice("CUDA GPU found")
    if _mps_available():
        return _mps_choice("Apple GPU (MPS) found")
    return _cpu_choice("no GPU found, training on the CPU")


def cap_threads_for_server() -> None:
    """Leave one CPU core free for the web server while torch trains in the same process.

    Measured (STACK.md): with torch on every core next to the Streamlit server, training ran 20x
    slower and health checks took 0.2-0.6 s; with one core left free, 7.7 ms. The setting is
    process-wide, so only the app calls this; the CLI and the benchmarks keep all cores.
    """
    threads = max(1, (os.cpu_count() or 1) - 1)
    torch.set_num_threads(threads)
    log.info("torch capped at %d threads to keep the web server responsive", threads)


def _mps_available() -> bool:
    # torch.backends.mps exists in every build; is_available() is False off Apple silicon.
    return torch.backends.mps.is_available()


def _cpu_choice(reason: str) -> DeviceChoice:
    threads = torch.get_num_threads()
    label = f"CPU, {threads} thread{'s' if threads != 1 else ''}"
    # No autocast on the CPU: bf16 is slower than float32 on CPUs without AMX and changes results.
    return DeviceChoice(torch.device("cpu"), label, reason, amp_dtype=None)


def _cuda_choice(reason: str) -> DeviceChoice:
    index = torch.cuda.current_device()
    name = torch.cuda.get_device_name(index)
    gib = torch.cuda.get_device_properties(index).total_memory / 2**30
    # bf16 keeps float32's range, so no loss scaling is needed; older GPUs only emulate it (slowly),
    # so they get fp16 with a GradScaler instead.
    bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    amp_dtype = torch.bfloat16 if bf16 else torch.float16
    label = f"GPU: {name}, {gib:.0f} GB"
    return DeviceChoice(torch.device("cuda", index), label, reason, amp_dtype)


def _mps_choice(reason: str) -> DeviceChoice:
    # Autocast on MPS covers only part of the operators in torch 2.13: train in float32 there.
    return DeviceChoice(torch.device("mps"), "Apple GPU (MPS)", reason, amp_dtype=None)
