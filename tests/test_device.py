"""Tests of device choice: CPU here, and the CUDA / MPS branches through monkeypatched torch."""

from __future__ import annotations

import os
import types

import pytest
import torch

from builder.device import DeviceChoice, cap_threads_for_server, choose_device
from builder.errors import SpecError, TrainingError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend an H100 is present; returns a dict that switches bf16 support."""
    state = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA H100 80GB HBM3")
    h100 = types.SimpleNamespace(total_memory=85_045_000_000)  # bytes: 79.2 GiB
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=None: h100)
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: state["bf16"]
    )
    return state


def test_cpu_when_no_gpu(no_gpu):
    choice = choose_device("auto")
    assert choice.device == torch.device("cpu")
    threads = torch.get_num_threads()
    assert choice.label == ("CPU, 1 thread" if threads == 1 else f"CPU, {threads} threads")
    assert choice.reason == "no GPU found, training on the CPU"
    assert choice.amp_dtype is None


def test_cpu_on_request_even_with_a_gpu(fake_cuda):
    choice = choose_device("cpu")
    assert choice.device.type == "cpu" and "chosen in the settings" in choice.reason


def test_auto_prefers_cuda_with_bf16(fake_cuda):
    choice = choose_device()
    assert choice == DeviceChoice(
        torch.device("cuda", 0), "GPU: NVIDIA H100 80GB HBM3, 79 GB", "CUDA GPU found",
        torch.bfloat16,
    )


def test_cuda_without_bf16_uses_fp16(fake_cuda):
    fake_cuda["bf16"] = False
    choice = choose_device("cuda")
    assert choice.amp_dtype == torch.float16 and choice.device.type == "cuda"


def test_auto_uses_mps_on_apple_silicon(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    choice = choose_device("auto")
    assert choice.device.type == "mps" and choice.label == "Apple GPU (MPS)"
    assert choice.reason == "Apple GPU (MPS) found" and choice.amp_dtype is None
    assert choose_device("mps").device.type == "mps"


@pytest.mark.parametrize(
    ("preference", "words"),
    [("cuda", "CUDA GPU was asked for"), ("mps", "Apple GPU (MPS) was asked for")],
)
def test_missing_gpu_is_a_plain_training_error(no_gpu, preference, words):
    with pytest.raises(TrainingError) as caught:
        choose_device(preference)
    message = str(caught.value)
    assert message.startswith(("A CUDA", "An Apple")) and words in message and message.endswith(".")
    assert "choose device auto or cpu" in message


def test_unknown_preference_lists_the_choices():
    with pytest.raises(SpecError, match="auto, cpu, cuda, mps; got 'tpu'"):
        choose_device("tpu")


def test_choice_is_frozen(no_gpu):
    choice = choose_device()
    with pytest.raises(AttributeError):
        choice.label = "other"  # type: ignore[misc]


@pytest.mark.parametrize(("cores", "threads"), [(8, 7), (2, 1), (1, 1), (None, 1)])
def test_cap_threads_leaves_one_core_for_the_server(monkeypatch, cores, threads):
    calls = []
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    cap_threads_for_server()
    assert calls == [threads]
