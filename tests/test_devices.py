"""Where the float transforms run (``lrcodec.devices``): resolving a device name, refusing one
this machine lacks, and whether bfloat16 is native. No GPU is needed: CUDA's presence is
monkeypatched where a test needs it."""

from __future__ import annotations

import pytest
import torch

from lrcodec import devices
from lrcodec.devices import DEVICES, bf16_native, resolve_device
from lrcodec.errors import LrcodecError


def _cuda(monkeypatch, available: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)


def test_cpu_is_always_there():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("available", [False, True])
def test_auto_takes_cuda_where_there_is_one(monkeypatch, available):
    _cuda(monkeypatch, available)
    expected = torch.device("cuda" if available else "cpu")
    assert resolve_device("auto") == expected and resolve_device() == expected


def test_cuda_without_one_is_a_clear_error(monkeypatch):
    _cuda(monkeypatch, False)
    with pytest.raises(LrcodecError, match="^--device cuda: no CUDA device is available to this PyTorch build$"):
        resolve_device("cuda")


def test_cuda_where_there_is_one(monkeypatch):
    _cuda(monkeypatch, True)
    assert resolve_device("cuda") == torch.device("cuda")


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:-1", "mps", ""])
def test_an_unknown_device_names_the_choices(name):
    with pytest.raises(LrcodecError, match=rf"^unknown device {name!r} \(choose from auto\|cpu\|cuda\|cuda:N\)$"):
        resolve_device(name)


def test_the_choices_are_the_clis():
    assert DEVICES == ("auto", "cpu", "cuda")


def test_bf16_native_answers_a_bool_here():
    assert isinstance(bf16_native(torch.device("cpu")), bool)
    assert bf16_native(torch.device("cpu")) == devices._cpu_has_bf16()


@pytest.mark.parametrize("supported", [False, True])
def test_on_cuda_it_asks_cuda(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert bf16_native(torch.device("cuda")) is supported


class _CpuInfo:
    """A stand-in for ``pathlib.Path`` that reads the given /proc/cpuinfo (None: unreadable)."""

    text: str | None = None

    def __init__(self, path):
        assert path == "/proc/cpuinfo"

    def read_text(self):
        if self.text is None:
            raise OSError("no /proc here")
        return self.text


@pytest.fixture
def cpuinfo(monkeypatch):
    """Set the CPU flags the uncached check reads, and oneDNN's answers."""
    monkeypatch.setattr(devices, "Path", _CpuInfo)
    monkeypatch.setattr(_CpuInfo, "text", None)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)

    def set_(flags, onednn=True):
        monkeypatch.setattr(_CpuInfo, "text", flags)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
        return devices._cpu_has_bf16.__wrapped__()

    return set_


def test_cpu_bf16_needs_the_flags_and_onednn(cpuinfo):
    assert cpuinfo("flags : fpu sse avx2 avx512f avx512_bf16") is True
    assert cpuinfo("flags : fpu sse amx_bf16 amx_tile") is True
    assert cpuinfo("flags : fpu sse avx2 avx512f") is False  # oneDNN alone would say yes: emulated
    assert cpuinfo("flags : avx512_bf16", onednn=False) is False  # capped by ONEDNN_MAX_CPU_ISA
    assert cpuinfo(None) is False  # no /proc/cpuinfo


def test_cpu_bf16_without_mkldnn_is_false(cpuinfo, monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    monkeypatch.setattr(_CpuInfo, "text", "flags : avx512_bf16")
    assert devices._cpu_has_bf16.__wrapped__() is False


def test_the_cpu_is_asked_once_per_process(monkeypatch):
    """Refinement asks for every image: /proc/cpuinfo is read once."""
    reads = []

    class Counting(_CpuInfo):
        text = "flags : fpu"

        def read_text(self):
            reads.append(1)
            return super().read_text()

    devices._cpu_has_bf16.cache_clear()
    try:
        monkeypatch.setattr(devices, "Path", Counting)
        assert bf16_native(torch.device("cpu")) is False and bf16_native(torch.device("cpu")) is False
        assert len(reads) == 1
    finally:
        devices._cpu_has_bf16.cache_clear()  # the next caller asks the real CPU


def test_any_cuda_device_by_its_index(monkeypatch):
    _cuda(monkeypatch, True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(LrcodecError, match="^--device cuda:2: this machine has 2 CUDA device"):
        resolve_device("cuda:2")
    _cuda(monkeypatch, False)
    with pytest.raises(LrcodecError, match="^--device cuda:1: no CUDA device is available"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("name", ["tpu", "cuda:", "cuda:x", "cuda1", "CPU"])
def test_a_device_that_names_nothing_is_refused(name):
    with pytest.raises(LrcodecError, match="unknown device"):
        devices.check_device(name)


def test_the_command_line_takes_a_cuda_index(monkeypatch, tmp_path):
    from click.testing import CliRunner
    from conftest import photo_like

    from lrcodec.app.cli import main

    _cuda(monkeypatch, False)
    photo_like(64, 48).save(tmp_path / "a.png")
    r = CliRunner().invoke(main, ["encode", str(tmp_path / "a.png"), "--device", "cuda:1", "-e", "1"])
    assert r.exit_code == 1 and "--device cuda:1: no CUDA device" in r.output, r.output
    r = CliRunner().invoke(main, ["encode", str(tmp_path / "a.png"), "--device", "tpu"])
    assert r.exit_code == 2 and "unknown device 'tpu'" in r.output
