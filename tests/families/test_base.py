"""What every family shares (``lrcodec.families.base``): the coder's hard rounding, the z path
under the factorized prior with a step, the Gaussian y step, receptive fields (the tile
halos), masked taps, the checkpoint helpers and the protocol's defaults."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from family_checks import TINY, tiny
from lrcodec.errors import LrcodecError
from lrcodec.families import family
from lrcodec.families.base import (Quantized, check_square, cheng2020_dims, factorized_forward, gaussian_step,
                                   hard_rounding, has_prefix, receptive_radius, zero_masked_taps)
from lrcodec.format.likelihoods import factorized_interval_likelihood, z_medians

FIXED_RATE = tuple(a for a in TINY if not a.endswith("-vbr"))


def rounding(v, channels=None) -> Quantized:
    """A quantizer that rounds (what the coder does to latents not yet rounded)."""
    r = torch.round(v)
    return Quantized(r, r - 0.5, r + 0.5)


# ------------------------------------------------------------------ quantizers and steps


def test_hard_rounding_feeds_the_value_on_with_its_unit_bin():
    v = torch.tensor([-3.0, 0.0, 2.0, 7.0])
    q = hard_rounding(v, slice(0, 4))
    assert torch.equal(q.value, v)
    assert torch.equal(q.lower, v - 0.5) and torch.equal(q.upper, v + 0.5)
    assert torch.equal(q.upper - q.lower, torch.ones(4))  # exact for integers


def test_factorized_forward_quantizes_in_steps_around_the_medians():
    """With a step s the quantizer sees (v - m) / s, the value fed on is a multiple of s from
    the median m, and the rate is the prior's mass on that value's bin of width s."""
    eb = tiny("mean-scale").net.entropy_bottleneck
    m = z_medians(eb)
    torch.manual_seed(0)
    z = m + torch.randn(1, eb.channels, 3, 4) * 4
    seen = []

    def spy(v, channels):
        seen.append((v.clone(), channels))
        return rounding(v)

    step = 2.5
    z_hat, bits = factorized_forward(eb, z, spy, step)
    (v, channels), = seen
    assert channels == slice(None)
    torch.testing.assert_close(v, (z - m) / step)
    k = (z_hat - m) / step
    torch.testing.assert_close(k, torch.round(k), atol=1e-5, rtol=0)
    assert ((z_hat - z).abs() <= step / 2 + 1e-5).all()
    expected = -torch.log2(factorized_interval_likelihood(eb, z_hat - step / 2, z_hat + step / 2))
    torch.testing.assert_close(bits, expected, atol=1e-4, rtol=1e-5)


def test_a_wider_step_costs_fewer_bits_at_the_same_value():
    """Hard rounding: the bin of width 2 around z holds the bin of width 1, so its mass is larger."""
    eb = tiny("mean-scale").net.entropy_bottleneck
    torch.manual_seed(1)
    z = z_medians(eb) + torch.randint(-3, 4, (1, eb.channels, 2, 3)).float()
    z_hat1, bits1 = factorized_forward(eb, z, hard_rounding)
    z_hat2, bits2 = factorized_forward(eb, z, hard_rounding, 2.0)
    torch.testing.assert_close(z_hat1, z)
    torch.testing.assert_close(z_hat2, z)
    assert (bits2 <= bits1 + 1e-6).all() and bits2.sum() < bits1.sum()


def test_the_factorized_prior_stays_float32_under_autocast():
    """A bfloat16 synthesis loop (refinement's ``precision``) must not lower the prior's
    precision: float32 bits, the same as outside autocast within float32 rounding (bfloat16's
    would be off by about 1e-2; the matrix products promise no bit equality between calls)."""
    eb = tiny("mean-scale").net.entropy_bottleneck
    torch.manual_seed(2)
    z = z_medians(eb) + torch.randn(1, eb.channels, 3, 3) * 3
    z_hat, bits = factorized_forward(eb, z, hard_rounding)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_hat_ac, bits_ac = factorized_forward(eb, z, hard_rounding)
    assert bits_ac.dtype == torch.float32 and z_hat_ac.dtype == torch.float32
    torch.testing.assert_close(bits_ac, bits, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(z_hat_ac, z_hat, rtol=1e-6, atol=1e-6)


def test_gaussian_step_scores_the_centred_value_under_its_sigma():
    """y is quantized as y - mu and restored around mu; its bits are -log2 of the Gaussian
    mass of its unit bin (erf in float64 as the reference)."""
    seen = []

    def spy(v, channels):
        seen.append(channels)
        return rounding(v)

    step = gaussian_step(spy, sigma_min=0.11)
    y = torch.tensor([0.3, 4.2, -1.6]).view(1, 3, 1, 1)
    mu = torch.tensor([0.2, 2.0, 0.4]).view(1, 3, 1, 1)
    sigma = torch.tensor([1.0, 1.5, 2.0]).view(1, 3, 1, 1)
    y_hat, bits = step(y, sigma, mu, slice(2, 5))
    assert seen == [slice(2, 5)]
    torch.testing.assert_close(y_hat.flatten(), torch.tensor([0.2, 4.0, -1.6]))

    def mass(k, s):
        return 0.5 * (math.erf((k + 0.5) / (s * math.sqrt(2))) - math.erf((k - 0.5) / (s * math.sqrt(2))))

    expected = torch.tensor([-math.log2(mass(k, s)) for k, s in ((0, 1.0), (2, 1.5), (-2, 2.0))])
    torch.testing.assert_close(bits.flatten(), expected, rtol=1e-5, atol=1e-5)


def test_gaussian_step_floors_sigma_at_sigma_min():
    step = gaussian_step(hard_rounding, sigma_min=0.5)
    y, mu = torch.full((1, 1, 2, 2), 1.0), torch.zeros(1, 1, 2, 2)
    _, at_floor = step(y, torch.full_like(y, 0.5), mu, slice(None))
    _, below = step(y, torch.full_like(y, 0.01), mu, slice(None))
    torch.testing.assert_close(below, at_floor, rtol=1e-6, atol=0)  # float elementwise kernels: within rounding
    _, lower_floor = gaussian_step(hard_rounding, sigma_min=0.01)(y, torch.full_like(y, 0.01), mu, slice(None))
    assert (lower_floor > at_floor).all()


# ------------------------------------------------------------------ receptive fields


def test_receptive_radius_of_single_layers():
    assert receptive_radius(nn.Conv2d(1, 1, 5, stride=2, padding=2)) == 2
    assert receptive_radius(nn.Conv2d(1, 1, 5, stride=2, padding=2), 3) == 3 * 2 + 2
    assert receptive_radius(nn.Conv2d(1, 1, 5, padding=0)) == 4  # one-sided: the far side counts
    assert receptive_radius(nn.Conv2d(1, 1, 3, padding=2, dilation=2)) == 2
    assert receptive_radius(nn.ConvTranspose2d(1, 1, 5, stride=2, padding=2, output_padding=1)) == 1
    assert receptive_radius(nn.ConvTranspose2d(1, 1, 5, stride=2, padding=2, output_padding=1), 4) == 3
    assert receptive_radius(nn.PixelShuffle(2), 3) == 2
    assert receptive_radius(nn.ReLU(), 5) == 5  # pointwise


def test_a_sequential_composes_from_its_last_layer():
    """Outputs reach through the last layer first: (0 * 1 + 2) * 2 + 1 = 5, not (0 * 2 + 1) + 2."""
    net = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(1, 1, 5, padding=2))
    assert receptive_radius(net) == 5
    assert _reach_of_one_input(net.double(), size=24, up=1, down=2) == 5  # and it is tight


class _Residual(nn.Module):
    """A residual block shaped like CompressAI's: conv1, conv2 after it and a parallel skip."""

    def __init__(self, skip_kernel: int):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.skip = nn.Conv2d(2, 2, skip_kernel, padding=skip_kernel // 2)

    def forward(self, x):
        return self.conv2(nn.functional.leaky_relu(self.conv1(x), 0.1)) + self.skip(x)


class _Attention(nn.Module):
    """An attention block's two parallel branches."""

    def __init__(self):
        super().__init__()
        self.conv_a = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1))
        self.conv_b = nn.Conv2d(2, 2, 9, padding=4)

    def forward(self, x):
        return self.conv_a(x) * torch.sigmoid(self.conv_b(x))


def test_parallel_branches_take_the_larger_reach():
    """A skip beside conv1 -> conv2 reaches max(2, its own), never the sum."""
    assert receptive_radius(_Residual(1)) == 2
    assert receptive_radius(_Residual(7)) == 3
    assert receptive_radius(_Residual(7), 4) == 7
    assert receptive_radius(_Attention()) == 4
    assert receptive_radius(nn.Sequential(_Residual(7), _Attention())) == 7
    torch.manual_seed(0)
    for block, radius in ((_Residual(7), 3), (_Attention(), 4)):
        assert _reach_of_one_input(block.double(), size=20, up=1, down=1) == radius


def _reach_of_one_input(transform, size: int, up: int, down: int, channels: int | None = None,
                        pixels: bool = False) -> int:
    """How far (in input positions) from output o's own input position o * down / up the input
    positions reach whose change moves output o: one input changed at the centre of a
    size x size grid, the farthest moved output measured (output x of an upsampling
    transform counted at its own input position x // up). Inputs are pixels in [0, 1) or
    latents of a few units."""
    channels = channels or next(p for p in transform.parameters() if p.dim() == 4).shape[1]
    torch.manual_seed(3)
    shape = (1, channels, size, size)
    x = torch.rand(shape, dtype=torch.float64) if pixels else torch.randn(shape, dtype=torch.float64) * 3
    p = size // 2 + 1
    moved = x.clone()
    moved[0, :, p, p] += 1.0 if pixels else 3.0
    with torch.no_grad():
        changed = (transform(moved) - transform(x)).abs().amax(1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    return max(int((torch.div(i, up, rounding_mode="floor") * down - p).abs().max()) for i in (rows, cols))


@pytest.mark.parametrize("arch", TINY)
def test_receptive_radius_bounds_the_real_transforms(arch):
    """Change one pixel: g_a's outputs that move lie within its radius of the pixel (output o
    at pixel 16 o), and within one y position of it; change one y position: g_s's pixels
    that move lie within its radius (pixel x at y position x // 16), exactly. The tile halos
    are built from them: at least the radius, g_a's a multiple of 16 pixels."""
    model = tiny(arch)
    g_a, g_s = copy.deepcopy(model.net.g_a).double().eval(), copy.deepcopy(model.net.g_s).double().eval()
    r_a, r_s = receptive_radius(model.net.g_a), receptive_radius(model.net.g_s)
    reach_a = _reach_of_one_input(g_a, size=16 * (-(-(2 * r_a + 32) // 16)), up=1, down=16, channels=3, pixels=True)
    assert r_a - 16 < reach_a <= r_a
    reach_s = _reach_of_one_input(g_s, size=2 * r_s + 5, up=16, down=1,
                                  channels=model.family.latent_channels(model.net))
    assert reach_s == r_s
    halo_a, halo_s = model.family.halos(model.net)
    assert halo_a % 16 == 0 and halo_a >= max(64, r_a) and halo_s >= max(4, r_s)


# ------------------------------------------------------------------ masked taps, checkpoints


@pytest.mark.parametrize("kind", ["causal", "checkerboard"])
def test_masked_taps_become_positive_zero(kind):
    """Negative weights under the mask become +0.0 (multiplying by the mask would leave -0.0,
    which hashes differently into the model id); the taps the mask keeps stay as they were."""
    from lrcodec.families.layers import CheckerboardMaskedConv2d, MaskedConv2d

    conv = (MaskedConv2d if kind == "causal" else CheckerboardMaskedConv2d)(2, 4, kernel_size=5, padding=2)
    with torch.no_grad():
        conv.weight.copy_(-1.0 - torch.rand_like(conv.weight))
    before = conv.weight.detach().clone()
    assert torch.signbit(before * conv.mask)[conv.mask == 0].all()  # what multiplying leaves
    zero_masked_taps(conv)
    masked, kept = conv.mask == 0, conv.mask == 1
    assert masked.any() and kept.any()
    assert (conv.weight[masked] == 0).all() and not torch.signbit(conv.weight[masked]).any()
    assert torch.equal(conv.weight[kept], before[kept])


def test_has_prefix():
    state = {"g_a.0.weight": torch.zeros(1), "QuantABCD.0.bias": torch.zeros(1)}
    assert has_prefix(state, "QuantABCD.") and has_prefix(state, "g_a.")
    assert not has_prefix(state, "scale_to_context.") and not has_prefix(state, "g_a.0.weight.")
    assert not has_prefix({}, "g_a.")


def test_cheng2020_dims_reads_n_or_names_the_missing_tensor():
    assert cheng2020_dims({"g_a.0.conv1.weight": torch.zeros(48, 3, 3, 3)}, "cheng2020-anchor") == (48, 48)
    with pytest.raises(LrcodecError, match="not a cheng2020-attn checkpoint: missing tensor g_a.0.conv1.weight"):
        cheng2020_dims({"g_a.0.weight": torch.zeros(48, 3, 5, 5)}, "cheng2020-attn")


def test_check_square():
    check_square("cheng2020-anchor", 64, 64)
    with pytest.raises(LrcodecError, match=r"cheng2020-anchor has as many latent channels as hidden ones \(M = N\), "
                                           r"got N=64 M=96"):
        check_square("cheng2020-anchor", 64, 96)


def test_dims_name_the_missing_tensor():
    with pytest.raises(LrcodecError, match="not a mean-scale checkpoint: missing tensor g_a.6.weight"):
        family("mean-scale").dims({"g_a.0.weight": torch.zeros(16, 3, 5, 5)})


# ------------------------------------------------------------------ the protocol's defaults


@pytest.mark.parametrize("arch", FIXED_RATE)
def test_a_fixed_rate_family_codes_at_one_rate(arch):
    """Level 0, no levels, no lambda of its own (the model card's), nothing extra in its id;
    asking for a level is one clear error that leaves the model as it was."""
    model = tiny(arch)
    fam = model.family
    assert fam.level(model.net) == 0 and fam.rate_levels(model.net) == 0
    assert fam.lmbda(model.net) is None and fam.identity(model.net) == b""
    model_id = model.model_id
    with pytest.raises(LrcodecError, match=f"^{arch} models code at one rate: they have no rate levels$"):
        model.set_level(2)
    assert model.model_id == model_id and "level" not in model.card
