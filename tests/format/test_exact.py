"""The exact entropy-parameter path (lrcodec.format.exact): elementary functions built from IEEE
basic operations, the discretized Gaussian and factorized tables, and integer networks.

What tests/test_portability.py already checks is not repeated here: exp, log(exp), erfc,
tanh and softplus against numpy/scipy over wide ranges, a tiny model's h_s against its int64
definition and its tables against the trained float prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special

from lrcodec.format import exact

nn = torch.nn
FIXED = 2.0**exact.ACT_BITS
LIMIT = exact.ACT_LIMIT * FIXED


def same_bits(a, b) -> bool:
    """Bit-for-bit equality of float64 arrays (tells -0.0 from 0.0, NaN equal to itself)."""
    a, b = np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


# ---------------------------------------------------------------- elementary functions


def test_sigmoid_and_log_match_the_reference_libraries():
    """Within a few ulps: sigmoid (relative error) against scipy's expit over its whole
    non-underflowing range, log against numpy's from 1e-300 to 1e300 (relative error where
    |log x| > 1) and around 1 (absolute)."""
    x = np.linspace(-700, 740, 100001)
    assert np.max(np.abs(exact.sigmoid(x) / special.expit(x) - 1)) < 2e-15
    x = np.exp(np.linspace(np.log(1e-300), np.log(1e300), 100001))
    assert np.max(np.abs(exact.log(x) - np.log(x)) / np.maximum(np.abs(np.log(x)), 1.0)) < 1e-15
    x = np.linspace(0.5, 2.0, 10001)
    assert np.max(np.abs(exact.log(x) - np.log(x))) < 4e-16
    assert exact.log(np.array([1.0]))[0] == 0.0


def test_upper_tail_is_the_normal_survival_function():
    """P(T > t): absolute error below 1e-15 everywhere, relative below 1e-10 out to t = 37
    (masses near 1e-300, where a naive 1 - cdf would give 0)."""
    t = np.linspace(-40, 40, 40001)
    assert np.max(np.abs(exact.upper_tail(t) - special.ndtr(-t))) < 1e-15
    t = np.linspace(-9, 37, 40001)
    assert np.max(np.abs(exact.upper_tail(t) / special.ndtr(-t) - 1)) < 1e-10


def test_extreme_inputs_give_finite_limits():
    """No inf or NaN reaches a table: exp saturates (its input is clipped to [-745, 709]) and
    the bounded functions reach their limits."""
    big = np.array([-1e6, -1000.0, 1000.0, 1e6])
    assert np.all(np.isfinite(exact.exp(big))) and np.all(exact.exp(big) >= 0)
    assert exact.sigmoid(big).tolist()[2:] == [1.0, 1.0] and np.all(exact.sigmoid(big)[:2] < 1e-300)
    assert exact.tanh(big).tolist() == [-1.0, -1.0, 1.0, 1.0]
    assert exact.softplus(big).tolist() == [0.0, 0.0, 1000.0, 1e6]
    assert exact.erfc(big).tolist() == [2.0, 2.0, 0.0, 0.0]
    assert exact.upper_tail(big).tolist() == [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "softplus", "erfc", "upper_tail"])
def test_elementwise_results_do_not_depend_on_the_array(name):
    """Each element's result is a function of that element alone, bit for bit: reordered,
    sliced, reshaped or alone, an input gives the same float (the basis of every machine and
    every tiling computing the same tables). erfc's inputs straddle its two methods (|x| = 3)."""
    f = getattr(exact, name)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-8, 8, 500), [-3.0, 3.0, np.nextafter(3.0, 0), 0.0, -0.0]])
    if name == "log":
        x = np.abs(x) * 10.0 ** rng.integers(-200, 200, x.size) + 1e-300
    whole = f(x)
    perm = rng.permutation(x.size)
    assert same_bits(f(x[perm]), whole[perm])
    assert same_bits(f(x[::3]), whole[::3])
    assert same_bits(f(x[:500].reshape(20, 25)), whole[:500].reshape(20, 25))
    for i in (0, 7, 500, 501, 502):
        assert same_bits(f(x[i : i + 1]), whole[i : i + 1]), x[i]


# ---------------------------------------------------------------- tables


def test_quantize_pmf_gives_integer_frequencies_never_zero():
    """Frequencies out of 2**PROB_BITS, integers, at least 1 (every symbol stays codable, even
    one of probability 0), otherwise the rounded probability; a row's total moves by at most
    one per symbol."""
    p = exact.gaussian_pmf(np.array([0.11, 0.5, 3.0, 5.0]), np.array([0.0, 0.3, -0.2, 0.5]), -60, 60)
    q = exact.quantize_pmf(p)
    assert q.min() >= 1 and np.array_equal(q, np.rint(q))
    assert (p == 0).any() and np.all(q[p == 0] == 1)  # sigma 0.11 underflows far out
    big = p * 2.0**exact.PROB_BITS >= 1
    assert np.array_equal(q[big], np.rint(p[big] * 2.0**exact.PROB_BITS))
    assert np.all(np.abs(q.sum(1) - 2.0**exact.PROB_BITS) <= q.shape[1])
    assert exact.quantize_pmf(np.zeros(3)).tolist() == [1.0, 1.0, 1.0]


SIGMAS = np.exp(np.linspace(np.log(0.11), np.log(256.0), 60))
OFFSETS = np.linspace(-0.5, 0.5, 60)


def test_gaussian_pmf_rows_sum_to_one():
    """Over a range of 12 sigma either side a row holds all the mass, to 1e-12."""
    p = exact.gaussian_pmf(SIGMAS[:40], OFFSETS[:40], -600, 600)  # sigma <= 42
    assert p.shape == (40, 1201) and p.min() >= 0
    assert np.max(np.abs(p.sum(1) - 1)) < 1e-12


def test_gaussian_pmf_matches_scipy():
    """P(k) under N(-offset, sigma**2) on unit bins: within 1e-14 of scipy's normal
    distribution, and within 1e-8 relative down to masses of 1e-300 (the tail nearer the bin
    is used, so small masses keep their precision)."""
    lo, hi = -300, 300
    p = exact.gaussian_pmf(SIGMAS, OFFSETS, lo, hi)
    k = np.arange(lo, hi + 1)[None, :]
    a, b = (k - 0.5 + OFFSETS[:, None]) / SIGMAS[:, None], (k + 0.5 + OFFSETS[:, None]) / SIGMAS[:, None]
    ref = np.where(k + OFFSETS[:, None] > 0, special.ndtr(-a) - special.ndtr(-b), special.ndtr(b) - special.ndtr(a))
    assert np.max(np.abs(p - ref)) < 1e-14
    small = ref > 1e-300
    assert (ref[small] < 1e-100).any()
    assert np.max(np.abs(p[small] / ref[small] - 1)) < 1e-8


def test_gaussian_pmf_rows_and_columns_are_independent():
    """A row is a function of its (sigma, offset) alone and a column of its symbol alone, bit
    for bit (what caching rows by key relies on), and mirroring the offset mirrors the row."""
    p = exact.gaussian_pmf(SIGMAS, OFFSETS, -20, 20)
    perm = np.random.default_rng(1).permutation(len(SIGMAS))
    assert same_bits(exact.gaussian_pmf(SIGMAS[perm], OFFSETS[perm], -20, 20), p[perm])
    assert same_bits(exact.gaussian_pmf(SIGMAS[5:6], OFFSETS[5:6], -20, 20), p[5:6])
    assert same_bits(exact.gaussian_pmf(SIGMAS, OFFSETS, -3, 4), p[:, 17:25])
    assert same_bits(exact.gaussian_pmf(SIGMAS, -OFFSETS, -20, 20), p[:, ::-1])


# ---------------------------------------------------------------- z: the factorized prior


def _bottleneck(vbr: bool = False, channels: int = 3, seed: int = 0):
    """A small entropy bottleneck (``lrcodec.families.priors``, in CompressAI's naming of its
    tensors or in that of its variable-rate one) with random parameters and medians."""
    from lrcodec.families.priors import EntropyBottleneck, EntropyBottleneckVbr

    eb = (EntropyBottleneckVbr if vbr else EntropyBottleneck)(channels, filters=(3, 3))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for matrix, bias, factor in eb.layers():
            for t in (matrix, bias) + (() if factor is None else (factor,)):
                t.copy_(torch.randn(t.shape, generator=g) * (0.5 if t is matrix else 1.0))
        medians = torch.randn(channels, generator=g)
        eb.quantiles.copy_(torch.stack([medians - 10, medians, medians + 10], 1)[:, None, :])
    return eb


def _reference_logits(eb, t: torch.Tensor) -> torch.Tensor:
    """The Ballé et al. (2018) CDF logit in float64 torch, (C, n) at t (C, n), from the raw
    parameters: softplus of the matrices, tanh of the factors."""
    x = t.double()[:, None, :]
    for matrix, bias, factor in eb.layers():
        x = torch.matmul(nn.functional.softplus(matrix.detach().double()), x) + bias.detach().double()
        if factor is not None:
            x = x + torch.tanh(factor.detach().double()) * torch.tanh(x)
    return x[:, 0, :]


def _rows_logits(eb, channels: np.ndarray, t: np.ndarray) -> torch.Tensor:
    """The reference logit of each row of t (R, n) under the channel of that row."""
    C = eb.channels
    every = _reference_logits(eb, torch.from_numpy(np.repeat(t[None], C, 0).reshape(C, -1)))
    return every.reshape(C, *t.shape)[channels, np.arange(len(channels))]


@pytest.mark.parametrize("vbr", [False, True], ids=["EntropyBottleneck", "EntropyBottleneckVbr"])
def test_factorized_prior_is_the_learned_cdf(vbr):
    """Both namings of the bottleneck's tensors give the density's logit (to 1e-12 of a float64
    reference), its medians, and a pmf that is the CDF's difference over each bin of width
    ``step``, centred on median + (k + offset) step."""
    eb = _bottleneck(vbr=vbr)
    prior = exact.FactorizedPrior.of(eb)
    assert np.array_equal(prior.medians, eb.quantiles[:, 0, 1].detach().double().numpy())
    t = torch.linspace(-15, 15, 301).repeat(3, 1)
    logits = prior.logits(t.double().numpy(), np.arange(3))
    assert np.max(np.abs(logits - _reference_logits(eb, t).detach().numpy())) < 1e-12
    channels, offsets = np.array([0, 1, 2, 2]), np.array([0.0, 0.25, -0.375, 0.5])
    for step in (1.0, 2.5):
        p = prior.pmf(channels, offsets, -6, 6, step)
        centre = prior.medians[channels][:, None] + (np.arange(-6, 7)[None, :] + offsets[:, None]) * step
        cdf = [torch.sigmoid(_rows_logits(eb, channels, centre + d * step)) for d in (-0.5, 0.5)]
        expected = (cdf[1] - cdf[0]).numpy()
        assert p.shape == (4, 13) and p.min() >= 0
        assert np.max(np.abs(p - expected)) < 1e-12


def test_factorized_pmf_rows_are_independent_and_hold_the_mass():
    """A row depends on its (channel, offset) and symbol alone, bit for bit, and a wide range
    holds all of a channel's mass."""
    prior = exact.FactorizedPrior.of(_bottleneck(seed=3))
    channels, offsets = np.array([2, 0, 1, 0]), np.array([0.0, 0.5, -0.25, -0.5])
    p = prior.pmf(channels, offsets, -10, 10)
    assert same_bits(prior.pmf(channels[[3, 1]], offsets[[3, 1]], -10, 10), p[[3, 1]])
    assert same_bits(prior.pmf(channels, offsets, -2, 3), p[:, 8:14])
    wide = prior.pmf(np.arange(3), np.zeros(3), -400, 400)
    assert np.max(np.abs(wide.sum(1) - 1)) < 1e-9


# ---------------------------------------------------------------- integer networks


def _fixed(shape, scale: float = 3.0, seed: int = 0) -> torch.Tensor:
    """Fixed-point activations (float64 integers, ACT_BITS fraction bits)."""
    g = torch.Generator().manual_seed(seed)
    return torch.round(torch.randn(shape, generator=g, dtype=torch.float64) * scale * FIXED)


def _nets() -> dict:
    torch.manual_seed(0)
    return {
        # mean-scale h_s: two stride-2 deconvolutions and a convolution (up 4)
        "deconv": (nn.Sequential(nn.ConvTranspose2d(8, 6, 5, 2, 2, 1), nn.LeakyReLU(0.01),
                                 nn.ConvTranspose2d(6, 6, 5, 2, 2, 1), nn.ReLU(), nn.Conv2d(6, 10, 3, 1, 1)), 8, 4),
        # Cheng et al.'s subpel_conv3x3 (a nested Sequential) with a leaky ReLU after the shuffle
        "subpel": (nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.LeakyReLU(),
                                 nn.Sequential(nn.Conv2d(12, 24, 3, padding=1), nn.PixelShuffle(2)),
                                 nn.LeakyReLU(0.2), nn.Conv2d(6, 6, 3, padding=1)), 8, 2),
        "dense": (nn.Sequential(nn.Conv2d(10, 16, 1), nn.LeakyReLU(), nn.Conv2d(16, 8, 1)), 10, 1),
    }


@pytest.mark.parametrize("name", ["deconv", "subpel", "dense"])
def test_integer_network_is_its_int64_reference_and_the_float_network(name):
    """The float64 path equals the int64 definition exactly, saturated inputs included, and
    computes what the float network does to within a few 2**-ACT_BITS per layer."""
    net, channels, up = _nets()[name]
    inet = exact.IntegerNetwork.of(net)
    x = _fixed((1, channels, 7, 9))
    x[0, 0, 0, 0], x[0, 1, 3, 4] = 1e12, -1e12  # beyond ACT_LIMIT
    out = inet(x.clone())
    assert out.shape == (1, out.shape[1], 7 * up, 9 * up)
    assert np.array_equal(out, inet.reference(x.clone()))
    assert np.array_equal(out, np.round(out)) and np.abs(out).max() <= LIMIT
    x = _fixed((1, channels, 7, 9), seed=1)
    with torch.no_grad():
        expected = net.double()(x / FIXED)
    out = inet(x)
    assert out.shape == expected.shape and np.abs(out / FIXED - expected.numpy()).max() < 1e-4


def test_integer_network_stays_exact_with_large_weights():
    """Layers whose weights would overflow float64's exact range get fewer fraction bits, so a
    worst-case input (every term saturated, all of one sign) still gives the int64 result."""
    torch.manual_seed(1)
    conv = nn.Conv2d(64, 2, 1)
    with torch.no_grad():
        conv.weight.mul_(4000)
    inet = exact.IntegerNetwork.of(nn.Sequential(conv))
    (layer,) = inet.layers
    assert layer.weight_bits < exact.WEIGHT_BITS_MAX
    l1 = np.abs(layer.weight).sum((1, 2, 3)).max()
    assert LIMIT * l1 + np.abs(layer.bias).max() < exact.SUM_LIMIT
    x = np.broadcast_to((np.sign(layer.weight[0]) * LIMIT)[None], (1, 64, 3, 3)).copy()
    assert np.array_equal(inet(x.copy()), inet.reference(x))


@pytest.mark.parametrize("name", ["deconv", "subpel"])
def test_radius_bounds_what_an_output_reads(name):
    """Outputs over input position i depend on inputs within ``radius`` of i only: changing one
    input leaves every output farther away unchanged (the halo a tile needs)."""
    net, channels, up = _nets()[name]
    inet = exact.IntegerNetwork.of(net)
    x = _fixed((1, channels, 11, 11))
    base = inet(x.clone())
    for i0, j0 in ((5, 5), (0, 10), (10, 0)):
        y = x.clone()
        y[0, :, i0, j0] += 5 * FIXED
        changed = (inet(y) != base).any(1)[0]
        rows, cols = np.nonzero(changed)
        assert len(rows) > 0
        assert np.abs(rows // up - i0).max() <= inet.radius and np.abs(cols // up - j0).max() <= inet.radius


def test_radius_of_known_stacks():
    """The receptive field's radius, in input positions, of simple stacks."""
    conv3 = lambda: nn.Conv2d(2, 2, 3, padding=1)  # noqa: E731
    assert exact.IntegerNetwork.of(nn.Sequential(nn.Conv2d(2, 2, 1))).radius == 0
    assert exact.IntegerNetwork.of(nn.Sequential(conv3(), nn.ReLU(), conv3())).radius == 2
    assert exact.IntegerNetwork.of(nn.Sequential(nn.Conv2d(2, 2, 5, 2, 2), nn.Conv2d(2, 2, 5, 2, 2))).radius == 6
    assert exact.IntegerNetwork.of(_nets()["deconv"][0]).radius == 2


def test_on_vectors_is_the_network_at_each_position():
    """A stack of 1x1 convolutions on (P, C) vectors gives the network's output at those
    positions exactly; ``matrices`` refuses other stacks."""
    net, channels, _ = _nets()["dense"]
    inet = exact.IntegerNetwork.of(net)
    x = _fixed((1, channels, 5, 6))
    whole = inet(x.clone())
    vectors = inet.on_vectors(x[0].reshape(channels, -1).T.contiguous())
    assert np.array_equal(vectors, whole[0].reshape(whole.shape[1], -1).T)
    with pytest.raises(ValueError, match="1x1"):
        exact.IntegerNetwork.of(_nets()["subpel"][0]).matrices


def test_integer_network_refuses_what_it_cannot_represent():
    for conv in (nn.Conv2d(2, 2, (1, 3)), nn.Conv2d(2, 2, 3, stride=(1, 2)), nn.Conv2d(2, 2, 3, groups=2),
                 nn.Conv2d(2, 2, 3, dilation=2), nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")):
        with pytest.raises(ValueError, match="no integer form"):
            exact.IntegerNetwork.of(nn.Sequential(conv))
    with pytest.raises(ValueError, match="Sigmoid"):
        exact.IntegerNetwork.of(nn.Sequential(nn.Conv2d(2, 2, 1), nn.Sigmoid()))
    with pytest.raises(ValueError, match="leading pixel shuffle"):
        exact.IntegerNetwork.of(nn.Sequential(nn.PixelShuffle(2), nn.ReLU()))


def test_leaf_modules_flattens_nested_sequentials_in_order():
    a, b, c, d = nn.Conv2d(1, 4, 1), nn.Conv2d(4, 4, 1), nn.PixelShuffle(2), nn.ReLU()
    leaves = exact.leaf_modules(nn.Sequential(a, nn.Sequential(b, nn.Sequential(c)), d))
    assert len(leaves) == 4 and all(x is y for (_, x), y in zip(leaves, (a, b, c, d)))
    assert [name for name, _ in leaves] == ["0", "1.0", "1.1.0", "2"]
    assert exact.leaf_modules(a, "h_s") == [("h_s", a)]


def _masked_conv(k: int = 5, channels: int = 6, out: int = 8, activation: bool = False):
    """A raster-order masked convolution (PixelCNN's type A: taps above and to the left)."""
    torch.manual_seed(2)
    conv = nn.Conv2d(channels, out, k, padding=k // 2)
    mask = torch.zeros(k, k)
    mask[: k // 2] = 1
    mask[k // 2, : k // 2] = 1
    with torch.no_grad():
        conv.weight.mul_(mask)
    return (nn.Sequential(conv, nn.LeakyReLU()) if activation else conv), int(mask.sum())


@pytest.mark.parametrize("activation", [False, True])
def test_position_convolution_is_the_whole_convolution_at_those_positions(activation):
    """At any positions (borders, repeats, any order) the output is the whole convolution's
    there, exactly, from the taps the mask leaves only."""
    conv, taps = _masked_conv(activation=activation)
    network = exact.IntegerNetwork.of(conv)
    at = exact.PositionConvolution(network)
    assert len(at.offsets[0]) == taps
    x = _fixed((1, 6, 7, 9))
    x[0, 2, 1, 1] = 1e12
    whole = network(x.clone())[0]
    rng = np.random.default_rng(0)
    rows, cols = np.divmod(np.arange(63), 9)
    picks = [(rows, cols), (rng.integers(0, 7, 40), rng.integers(0, 9, 40)), (np.array([6]), np.array([8]))]
    for r, c in picks:
        got = at(x, r, c)
        assert np.array_equal(got, whole[:, r, c].T), (r, c)


def test_position_convolution_refuses_other_layers():
    for layers in (nn.Conv2d(2, 2, 3, stride=2, padding=1), nn.Conv2d(2, 2, 3, padding=0),
                   nn.ConvTranspose2d(2, 2, 3, padding=1), nn.Sequential(nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1))):
        with pytest.raises(ValueError):
            exact.PositionConvolution(exact.IntegerNetwork.of(layers))
