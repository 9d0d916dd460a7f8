"""Fixtures: small seeded models and generated images, so the suite needs no ../shared."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lrcodec.families import family
from lrcodec.models import build_network, load_safetensors, save_model


# Cheng et al.'s residual transforms start with tiny outputs: more steps before y codes anything
BRIEF_STEPS = {"cheng2020-anchor": 200, "cheng2020-attn": 200, "cheng2020-anchor-checkerboard": 400, "scale-vbr": 200,
               "mean-scale-vbr": 200, "joint-autoregressive-vbr": 200}
TINY_CONTEXT = {"slices": 3, "hidden": [16, 8], "checkerboard": True}
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"
VBR_LEVEL = 7  # the variable-rate test networks are trained and coded at their finest step (gain 1)
# Checkpoints' runtime exports (lrcodec.runtime) go to a folder of this run's, never the user's cache;
# the CLI's subprocesses inherit it.
os.environ["LRCODEC_CACHE"] = tempfile.mkdtemp(prefix="lrcodec-test-cache-")


def make_model(arch: str = "mean-scale", N: int = 16, M: int = 24, seed: int = 0, context: dict | None = None):
    """A small trained model, the same on every machine: its weights are committed in
    tests/fixtures/ (training is float arithmetic, so the same seed trains other weights on
    another CPU); a new (arch, N, M, seed) is trained once and saved there, to be committed."""
    context = context or (TINY_CONTEXT if arch == "channel-context" else None)
    card = {"arch": arch, "N": N, "M": M, "sigma_min": 0.11, **({"context": context} if context else {}),
            **({"level": VBR_LEVEL} if arch.endswith("-vbr") else {})}
    path = FIXTURES / f"tiny-{arch}-N{N}-M{M}-{seed}.safetensors"
    if not path.exists():
        torch.manual_seed(seed)
        net = build_network(arch, N, M, context)
        if arch.endswith("-vbr"):
            family(arch).set_level(net, VBR_LEVEL)
        _briefly_train(net, arch, seed, BRIEF_STEPS.get(arch, 30))
        # fp16 loads back exactly, so it is as machine-independent; ELIC's fixed-width channel
        # contexts (224 and 128 channels of 5x5) would make its fp32 file 11 MB
        save_model(net, path, card, fp16=arch.startswith("elic"))
    return load_safetensors(path, dict(card, name=f"tiny-{arch}-{seed}"))


def _briefly_train(net, arch: str, seed: int, steps: int = 30) -> None:
    """A few Adam steps on generated images, so latents and priors look like a trained
    model's (an untrained one maps every image to all-zero symbols)."""
    from lrcodec.learn.train import loss_of, rd_forward

    images = torch.stack([
        torch.from_numpy(np.array(photo_like(64, 64, seed=seed * 100 + i))).permute(2, 0, 1)
        for i in range(4)
    ]).float() / 255
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(steps):
        loss = loss_of(rd_forward(net, arch, images, "noise"), images, 0.05)["loss"]
        opt.zero_grad()
        (loss + net.aux_loss()).backward()
        opt.step()


# What lrcodec promises of decoded pixels between thread counts, CPU kernels, tilings and
# machines: g_s is float, its sums split differently, so a value may differ by one level, and
# rarely (docs/portability.md, "What a file needs to decode elsewhere"; bench/threads.py measures how rarely).
from lrcodec.metrics import PIXEL_FRACTION, PIXEL_LEVELS  # noqa: E402


def assert_pixels_close(a, b, what: str = "") -> None:
    """8-bit pixels (arrays or tensors of one shape) within the float bound of each other."""
    a, b = np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)
    assert a.shape == b.shape, what
    assert np.abs(a - b).max(initial=0) <= PIXEL_LEVELS and np.mean(a != b) < PIXEL_FRACTION, what


# An encoder's float y rounds the other way only where it lies within about 1e-6 of a rounding
# boundary, so two encodes of one image under other arithmetic share all but a few symbols.
LATENT_FRACTION = 1e-3


def assert_latents_close(a, b, what: str = "") -> None:
    """Symbols of two encodes of one image (arrays or tensors of one shape) within that bound."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and np.mean(a != b) < LATENT_FRACTION, what


def photo_like(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A smooth image with edges and mild noise: gradients, discs and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([
        120 + 80 * np.sin(xx / 23.0 + c) * np.cos(yy / 17.0 - c) + 30 * (xx / max(width, 1))
        for c in range(3)
    ], axis=-1)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, 40)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    return image.convert(mode) if mode != "RGB" else image


@pytest.fixture(scope="session")
def tiny_model():
    return make_model()


@pytest.fixture(scope="session")
def tiny_context_model():
    return make_model("channel-context", seed=2)


@pytest.fixture(scope="session")
def tiny_scale_model():
    return make_model("scale", seed=1)


@pytest.fixture
def models_dir(tmp_path, monkeypatch, tiny_model):
    """A models/ folder holding one tiny shipped model, made the default for the CLI."""
    folder = tmp_path / "models"
    save_model(tiny_model.net, folder / "tiny", {"arch": "mean-scale", "N": 16, "M": 24, "lmbda": 0.01})
    monkeypatch.setenv("LRCODEC_MODELS", str(folder))
    return folder


def pytest_generate_tests(metafunc):
    """A family's test class (``tests/families/family_checks.py``) runs each check on each of
    its ``ARCHS``, and on each golden file of them."""
    archs = getattr(metafunc.cls, "ARCHS", None)
    if not archs:
        return
    if "arch" in metafunc.fixturenames:
        metafunc.parametrize("arch", archs)
    if "uq" in metafunc.fixturenames:
        metafunc.parametrize("uq", [False, True])
    if "golden" in metafunc.fixturenames:
        from family_checks import golden_names

        metafunc.parametrize("golden", golden_names(archs))
