"""The registry of families (``lrcodec.families``): every architecture has a family and a
test network, checkpoints are recognised by their keys, unknown and misfitting ones are one
clear error, and every family's golden files decode the same under other CPU kernels. Each
family's own checks are in its test file (``family_checks.FamilyChecks``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from family_checks import FAMILY_GOLDEN, TINY, tiny
from lrcodec import models
from lrcodec.errors import LrcodecError
from lrcodec.families import ARCHITECTURES, ZOO, ZOO_URLS, arch_of_state


def test_every_architecture_has_a_test_network():
    assert set(TINY) == set(ARCHITECTURES)


def test_compressai_networks_are_recognised_by_their_keys():
    from compressai.models import (Cheng2020Anchor, Cheng2020Attention, FactorizedPrior, FactorizedPriorReLU,
                                   JointAutoregressiveHierarchicalPriors, MeanScaleHyperprior, ScaleHyperprior)

    for cls, arch in [(FactorizedPrior, "factorized"), (FactorizedPriorReLU, "factorized-relu"),
                      (ScaleHyperprior, "scale"), (MeanScaleHyperprior, "mean-scale"),
                      (JointAutoregressiveHierarchicalPriors, "joint-autoregressive")]:
        assert arch_of_state(cls(8, 12).state_dict()) == arch
    assert arch_of_state(Cheng2020Anchor(8).state_dict()) == "cheng2020-anchor"
    assert arch_of_state(Cheng2020Attention(8).state_dict()) == "cheng2020-attn"
    from compressai.models.sensetime import Cheng2020AnchorCheckerboard, Elic2022Chandelier, Elic2022Official

    assert arch_of_state(Cheng2020AnchorCheckerboard(8).state_dict()) == "cheng2020-anchor-checkerboard"
    for groups in ([2, 2, 4, 8], [4, 4, 8], [16, 16, 32, 64, 192]):  # the default split too
        M = sum(groups)
        assert arch_of_state(Elic2022Official(8, M, groups).state_dict()) == "elic2022-official"
        assert arch_of_state(Elic2022Chandelier(8, M, groups).state_dict()) == "elic2022-chandelier"


def test_an_unknown_architecture_is_one_clear_error(tmp_path):
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}, tmp_path / "other.pth")
    with pytest.raises(LrcodecError, match="not a checkpoint of an architecture lrcodec knows"):
        models.load_model(str(tmp_path / "other.pth"))


def test_a_checkpoint_that_does_not_fit_is_one_clear_error(tmp_path):
    state = dict(tiny("cheng2020-anchor").net.state_dict())
    state["h_s.0.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(LrcodecError, match="checkpoint does not match a cheng2020-anchor model: .*size mismatch"):
        models.load_model(str(tmp_path / "bad.pth"))
    with pytest.raises(LrcodecError, match="do not split M=96"):
        models.build_network("elic2022-official", 64, 96)
    with pytest.raises(LrcodecError, match="M = N"):
        models.build_network("cheng2020-anchor", 64, 96)


@pytest.mark.parametrize("capability, onednn_isa", [("default", "SSE41"), ("avx2", "AVX2")])
def test_golden_files_decode_the_same_under_other_kernels(capability, onednn_isa):
    """Each family's golden files decoded in a process with PyTorch's kernels without SIMD (and
    oneDNN's SSE4.1), or both capped at AVX2: the very same symbols and latents."""
    script = ("import json, sys; sys.path[:0] = ['tests', 'tests/families']; from family_checks import tiny, FAMILY_GOLDEN, GOLDEN;"
              "from lrcodec import codec; from lrcodec.app.probe import latent_digest;"
              "print(json.dumps({n: latent_digest(codec.decode_latents((GOLDEN / n).read_bytes(), tiny(e['arch'])).latents)"
              " for n, e in FAMILY_GOLDEN.items()}))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                         cwd=ROOT,
                         env={**os.environ, "ATEN_CPU_CAPABILITY": capability, "ONEDNN_MAX_CPU_ISA": onednn_isa})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {n: e["latents_sha256"] for n, e in FAMILY_GOLDEN.items()}


def test_every_architecture_is_checked_by_its_family_test_file():
    """Each architecture is in exactly one family test class (tests/families/test_*.py)."""
    import importlib

    names = ["test_hyperprior", "test_factorized", "test_autoregressive", "test_checkerboard", "test_channel_context", "test_vbr"]
    checked = [a for n in names for cls in vars(importlib.import_module(n)).values()
               if isinstance(cls, type) and cls.__name__.startswith("Test") for a in getattr(cls, "ARCHS", ())]
    assert sorted(checked) == sorted(ARCHITECTURES)


def test_zoo_urls_are_compressais():
    from compressai.zoo.image import model_urls
    from compressai.zoo.image_vbr import model_urls as vbr_urls

    assert set(ZOO_URLS) == set(ZOO) == set(model_urls) | set(vbr_urls)
    for name, urls in model_urls.items():
        assert ZOO_URLS[name] == urls["mse"]
        assert sorted(urls["mse"]) == list(range(1, ZOO[name][1] + 1))
    for name, urls in vbr_urls.items():
        assert ZOO_URLS[name] == urls["mse"]
