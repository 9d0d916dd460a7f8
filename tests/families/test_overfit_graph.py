"""The overfitted family's float graph (``lrcodec.families.overfit``) computes what the file's
decoder does (``lrcodec.format.overfit``): the contexts, the ARM to its fixed-point floors,
the synthesis within float tolerance; and its windows' gradients are autograd's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrcodec.families.base import Quantized
from lrcodec.families.overfit import OverfitNet, _Shifts, schedule
from lrcodec.format import overfit as fmt
from lrcodec.settings import OverfitSettings


def trained_looking(profile: fmt.Profile, h: int = 64, w: int = 128, seed: int = 0) -> OverfitNet:
    net = OverfitNet(profile, h, w)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * {"latents": 3.0, "arm": 0.05}.get(name.split(".")[0], 0.3))
    return net


def load_decoder(net: OverfitNet, decoder: fmt.Decoder) -> None:
    """Set the float parameters to a quantized decoder's values."""
    state = net.state_dict()
    with torch.no_grad():
        for name, _ in net.profile.tensors:
            step = decoder.arm_exponent if name.startswith("arm.") else decoder.synth_exponent
            target = state[name.replace("synth.res", "residual.")]
            target.copy_(torch.from_numpy(decoder.params[name] * 2.0**-step).view_as(target))


@pytest.mark.parametrize("name", sorted(fmt.PROFILES))
def test_contexts_are_the_decoders(name):
    net = trained_looking(fmt.PROFILES[name])
    values = net.latents.detach().round()
    ours = net.contexts(values).numpy()
    theirs = np.concatenate([fmt.contexts(g.numpy(), net.profile.context) for g in net.grids(values)])
    assert np.array_equal(ours, theirs)


def test_the_float_arm_is_the_exact_arm_but_for_its_floors():
    """With its parameters on the file's grid, the float ARM differs from the fixed-point one by
    the floors of 1/256 in each layer only."""
    net = trained_looking(fmt.PROFILES["overfit-2000"])
    decoder = net.quantized_decoder(10, 10)
    load_decoder(net, decoder)
    values = net.latents.detach().round()
    with torch.no_grad():
        mu, log_scale = net.double().arm_forward(net.contexts(values.double()))
    exact_mu, exact_log_scale = decoder.arm()(net.contexts(values).numpy().astype(np.int64))
    assert np.abs(mu.numpy() - exact_mu / 2**fmt.ARM_BITS).max() < 0.5
    assert np.abs(log_scale.numpy() - exact_log_scale / 2**fmt.ARM_BITS).max() < 0.5
    assert np.median(np.abs(mu.numpy() - exact_mu / 2**fmt.ARM_BITS)) < 0.05


@pytest.mark.parametrize("name", sorted(fmt.PROFILES))
def test_the_float_synthesis_is_the_decoders(name):
    net = trained_looking(fmt.PROFILES[name], seed=3)
    decoder = net.quantized_decoder(8, 12)
    load_decoder(net, decoder)
    values = net.latents.detach().round()
    with torch.no_grad():
        ours = net.synthesise(values)[0].numpy()
    grids = [g.numpy().astype(np.int64) for g in net.grids(values)]
    theirs = fmt.synthesise(decoder, grids, 60, 100)[0]
    expected = np.clip(np.rint(ours[:, :60, :100] * 255), 0, 255)
    assert np.abs(theirs.astype(np.int16) - expected).max() <= 1 and np.mean(theirs != expected) < 1e-3


def test_the_tiled_synthesis_is_the_whole_images():
    """Tiles with their halo give the pixels of the image synthesised in one piece."""
    net = trained_looking(fmt.PROFILES["overfit-2000"], h=192, w=320, seed=7)
    decoder = net.quantized_decoder(8, 12)
    grids = [g.detach().round().numpy().astype(np.int64) for g in net.grids(net.latents.detach())]
    whole = fmt.synthesise(decoder, grids, 190, 300, tile=1024)
    tiled = fmt.synthesise(decoder, grids, 190, 300, tile=64)
    assert np.abs(whole.astype(np.int16) - tiled).max() <= 1 and np.mean(whole != tiled) < 1e-3


def test_the_windows_gradient_is_autograds():
    padded = torch.randn(2, 7, 9, dtype=torch.float64, requires_grad=True)
    starts = [(0, 0), (1, 2), (2, 1), (0, 2)]
    assert torch.autograd.gradcheck(lambda p: _Shifts.apply(p, starts, 5, 7, -1), (padded,))
    assert torch.autograd.gradcheck(lambda p: _Shifts.apply(p, starts, 5, 7, 0), (padded,))


def test_the_rate_is_the_exact_tables_rate_for_rounded_latents():
    """For integer latents, the float graph's bits are within a percent of the file's ideal
    bits (the tables' quantized centres and scales)."""
    net = trained_looking(fmt.PROFILES["overfit-500"], seed=5)
    decoder = net.quantized_decoder(10, 10)
    load_decoder(net, decoder)
    values = net.latents.detach().round()
    with torch.no_grad():
        bits = float(net.bits(Quantized(values, values - 0.5, values + 0.5), values))
    grids = [g.numpy().astype(np.int64) for g in net.grids(values)]
    assert bits == pytest.approx(fmt.latent_bits(decoder, grids), rel=0.02)


def test_schedule_anneals_then_rounds():
    settings = OverfitSettings(lr=0.01, temperature=(0.3, 0.1), noise=(0.25, 0.1), hard_fraction=0.1)
    start, late, hard = schedule(0.0, settings), schedule(0.89, settings), schedule(0.95, settings)
    assert not start.hard and not late.hard and hard.hard
    assert start.temperature == pytest.approx(0.3) and start.noise == pytest.approx(0.25)
    assert late.temperature == pytest.approx(0.1, abs=0.01) and late.lr < start.lr / 100
    assert hard.lr <= settings.lr / 100
