"""Joint autoregressive priors and Cheng et al. 2020 (``lrcodec.families.autoregressive``):
wavefront units, the masked context's exact integers, halos of the sub-pixel transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import assert_pixels_close, photo_like
from family_checks import FamilyChecks, assert_positions_are_whole, tiny
from lrcodec import codec, models


class TestAutoregressive(FamilyChecks):
    ARCHS = ("joint-autoregressive", "cheng2020-anchor", "cheng2020-attn")


def test_masked_taps_are_zeroed_at_load(tmp_path):
    """CompressAI masks in forward only: taps a checkpoint holds under the mask never reach
    the coder or the model id."""
    model = tiny("joint-autoregressive")
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    mask = state["context_prediction.mask"]
    state["context_prediction.weight"] += (1 - mask) * 0.5
    torch.save(state, tmp_path / "unmasked.pth")
    loaded = models.load_model(str(tmp_path / "unmasked.pth"))
    assert loaded.model_id == model.model_id
    assert torch.equal(loaded.net.context_prediction.weight * (1 - mask), torch.zeros_like(mask))


def test_wavefront_units_cover_y_in_an_order_the_mask_allows():
    from lrcodec.families.autoregressive import wavefront_units

    units = wavefront_units(4, 32, 48)
    assert len(units) == 141  # a Kodak image: 1,536 positions
    step = np.zeros((32, 48), int)
    for t, unit in enumerate(units):
        step[unit.positions] = t
    assert sorted(np.bincount(step.ravel(), minlength=141) > 0) == [True] * 141
    # every tap of the causal 5x5 mask is coded in an earlier unit
    for di, dj in [(0, -1), (0, -2), (-1, -2), (-1, 2), (-2, 2), (-2, -2), (-1, 0)]:
        i, j = np.mgrid[2:32, 2:46]
        assert (step[i + di, j + dj] < step[i, j]).all()


@pytest.mark.parametrize("arch", ["joint-autoregressive", "cheng2020-anchor"])
def test_exact_parameters_are_the_float_graphs(arch):
    """(sigma, mu) the coder uses equal the float graph's on the decoded y_hat, up to the
    fixed-point rounding; the symbols decided on each path agree."""
    model = tiny(arch)
    x, _ = codec.prepare_image(photo_like(128, 96, seed=5))
    y, z = codec.analyse(model, x)
    q = codec.quantize_latents(model, y, z)
    with torch.no_grad():
        sigma, mu = model.family.params(model.net, model.net.h_s(q.z_hat), q.y_hat)
    assert (mu.double() - q.mu).abs().max() < 2e-3
    assert torch.mean((torch.round(y - mu) == q.y_symbols.float()).float()) > 0.999


@pytest.mark.parametrize("arch", ["joint-autoregressive", "cheng2020-anchor"])
def test_integer_networks_equal_their_int64_definition(arch):
    exact = tiny(arch).exact
    z = torch.randint(-40, 40, (1, 16, 7, 9)).double() * 2**16
    z[0, 0, 0, 0] = 1e9
    assert np.array_equal(exact.h_s(z), exact.h_s.reference(z))
    p = torch.randint(-3000, 3000, (5, exact.entropy_parameters.layers[0].weight.shape[1], 1, 1)).double() * 2**8
    assert np.array_equal(exact.entropy_parameters(p), exact.entropy_parameters.reference(p))


def test_the_context_at_chosen_positions_is_the_whole_convolution_there():
    """The coder's masked context reads only the taps its mask leaves, at a unit's positions,
    and entropy_parameters runs on those positions' vectors: the integers of the whole networks."""
    exact = tiny("joint-autoregressive").exact
    assert_positions_are_whole(exact.context, exact.entropy_parameters)


def test_cheng2020_halos_come_from_the_receptive_fields():
    """The sub-pixel h_s reaches 4 z positions, more than the 3 the first families needed;
    tiled h_s is exactly the untiled one with that halo, and not with less."""
    exact = tiny("cheng2020-anchor").exact
    assert exact.h_s.radius == 4
    z = torch.randint(-6, 6, (1, 16, 24, 20)).numpy()
    whole = exact.hyper(z, np.zeros(z.shape), tile=64)
    assert np.array_equal(exact.hyper(z, np.zeros(z.shape), tile=8), whole)
    from lrcodec.format.tiling import tiled

    z_fixed = torch.from_numpy(z * 2.0**16)
    assert not np.array_equal(tiled(exact.h_s, z_fixed, up=4, tile=8, halo=2), exact.h_s(z_fixed))


def test_cheng2020_tiled_synthesis_is_the_untiled_one(monkeypatch):
    model = tiny("cheng2020-anchor")
    assert model.halos[1] > 4  # wider than the hyperpriors' g_s
    y_hat = torch.randn(1, 16, 40, 36) * 3
    whole = codec.synthesise(model, y_hat, 640, 576)
    monkeypatch.setattr(codec, "TILE", 256)
    monkeypatch.setattr(codec, "WHOLE", 0)
    tiled = codec.synthesise(model, y_hat, 640, 576)
    assert_pixels_close(whole, tiled)
