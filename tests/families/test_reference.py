"""lrcodec's own networks (``lrcodec.families.layers``, ``priors`` and each family's classes)
against CompressAI 1.2.8's (``lrcodec.families.reference``), which they replace at run
time: for every architecture the same state dict (names, shapes, dtypes), the same tensors
from the same seed, the same module tree (what the integer networks and the tile halos are
read from), the same outputs of every sub-network lrcodec runs, within float tolerance, in
both directions (CompressAI's weights in lrcodec's network, lrcodec's in CompressAI's, with
its strict loader). The shared layers: test_layers.py and test_priors.py."""

from __future__ import annotations


import pytest
import numpy as np
import torch
from torch import nn

from lrcodec.format.exact import IntegerNetwork
from lrcodec.families import ARCHITECTURES, family
from lrcodec.families.reference import compressai_build
from lrcodec.models import build_network, network_from_state

TOL = {"rtol": 1e-5, "atol": 1e-5}  # float tolerance: the same operations, other kernels may sum otherwise
GROUPS = [4, 4, 8, 16]  # ELIC's uneven groups, small (M = 32)
# the modules the families run, by their last name (and every channel context)
RUN = ("g_a", "g_s", "h_a", "h_s", "context_prediction", "entropy_parameters", "QuantABCD", "gayn2zqstep",
       "scale_to_context")


def size(arch: str) -> tuple[int, int, dict | None]:
    if arch.startswith("cheng2020"):
        return 16, 16, None
    if arch.startswith("elic2022"):
        return 16, 32, {"groups": GROUPS}
    if arch == "channel-context":
        return 16, 24, {"slices": 3, "hidden": [16, 8], "checkerboard": True}
    return 16, 24, None


def theirs(arch: str, seed: int = 0):
    N, M, shape = size(arch)
    torch.manual_seed(seed)
    return compressai_build(arch, N, M, shape)


def ours(arch: str, seed: int = 0):
    N, M, shape = size(arch)
    torch.manual_seed(seed)
    return build_network(arch, N, M, shape)


def perturbed(net, seed: int = 1):
    """The network with every float tensor moved off its initial value (zero factors, unit
    GDN betas, ... would hide a wrong formula), some of GDN's parameters below their bounds."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.mul_(1 + 0.1 * torch.randn(p.shape, generator=gen)).add_(0.02 * torch.randn(p.shape, generator=gen))
            if name.split(".")[-1] in ("beta", "gamma"):
                p.view(-1)[::7] = -0.01  # under the lower bound: its forward and gradient matter
    return net


def without_context(state: dict) -> dict:
    """A channel-context model's state less its own context (CompressAI has none)."""
    return {k: v for k, v in state.items() if not k.startswith("context.")}


def shapes(state: dict) -> dict:
    return {k: (tuple(v.shape), v.dtype) for k, v in state.items()}


def first_leaf(module):
    return next(m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)))


def run_paths(net) -> list[str]:
    return [n for n, m in net.named_modules()
            if (n.split(".")[-1] in RUN or n.split(".")[-2:-1] == ["channel_context"]) and not isinstance(m, nn.Identity)]


def sample_input(path: str, module, gen: torch.Generator):
    leaf = first_leaf(module)
    if isinstance(leaf, nn.Linear):  # the variable-rate MLPs read (scaled sigma, gain) or a gain: positive
        return 0.05 + 3 * torch.rand((5, leaf.in_features), generator=gen)
    side = {"g_a": 64, "g_s": 4, "h_s": 2}.get(path.split(".")[-1], 8)
    return torch.randn((1, leaf.in_channels, side, side), generator=gen)


def assert_same_networks(a, b, arch: str) -> None:
    """The same state-dict layout, module tree and outputs of every sub-network lrcodec runs
    (``a`` lrcodec's network, ``b`` CompressAI's, or the other way round)."""
    sa, sb = a.state_dict(), b.state_dict()
    if arch == "channel-context":
        sa, sb = without_context(sa), without_context(sb)
    assert shapes(sa) == shapes(sb)
    ma, mb = dict(a.named_modules()), dict(b.named_modules())
    if arch == "channel-context":
        ma = {k: v for k, v in ma.items() if k != "context" and not k.startswith("context.")}
    assert set(ma) == set(mb)
    for name, m in ma.items():
        # torch's own modules by type, the others (GDN, masked convolutions, blocks, latent
        # codecs, entropy models) by class name; every leaf by its full description
        other = mb[name]
        if name:
            assert type(m).__name__ == type(other).__name__, name
        if type(m).__module__.startswith("torch."):
            assert type(m) is type(other), name
        if not list(m.children()):
            assert repr(m) == repr(other), name
        if hasattr(m, "mask"):
            assert torch.equal(m.mask, other.mask), name
        if type(m).__name__ == "GDN":
            assert m.inverse == other.inverse, name
    chosen = family(arch)
    assert chosen.halos(a) == chosen.halos(b)  # receptive fields: the tile halos
    paths = run_paths(a)
    assert paths == run_paths(b) and {"g_a", "g_s"} <= set(paths)
    gen = torch.Generator().manual_seed(3)
    for path in paths:
        x = sample_input(path, ma[path], gen)
        with torch.no_grad():
            torch.testing.assert_close(ma[path](x.clone()), mb[path](x.clone()), **TOL, msg=lambda m: f"{path}: {m}")
        if not isinstance(first_leaf(ma[path]), nn.Linear) and path.split(".")[-1] not in ("g_a", "g_s"):
            ia, ib = IntegerNetwork.of(ma[path]), IntegerNetwork.of(mb[path])  # what the coder runs
            assert ia.radius == ib.radius and len(ia.layers) == len(ib.layers), path
            fixed = torch.round(x.double().clamp(-4, 4) * 2.0**16)
            assert np.array_equal(ia(fixed), ib(fixed)), path
    bottlenecks = [n for n, m in ma.items() if hasattr(m, "quantiles")]
    assert bottlenecks == [n for n, m in mb.items() if hasattr(m, "quantiles")] and bottlenecks
    for name in bottlenecks:
        ea, eb = ma[name], mb[name]
        assert (ea.channels, ea.filters) == (eb.channels, eb.filters)
        t = 6 * torch.randn((ea.channels, 1, 50), generator=gen)
        with torch.no_grad():
            torch.testing.assert_close(ea._logits_cumulative(t, stop_gradient=False),
                                       eb._logits_cumulative(t, stop_gradient=False), **TOL)
            torch.testing.assert_close(ea.loss(), eb.loss(), **TOL)
    if all(type(ma[n]).__name__ == "EntropyBottleneck" for n in bottlenecks):  # CompressAI's aux_loss misses the VBR one
        with torch.no_grad():
            torch.testing.assert_close(a.aux_loss(), b.aux_loss(), **TOL)
    for attr in ("Gain", "lmbda", "levels", "vr_entbttlnck", "N", "M", "groups"):
        if hasattr(b, attr) or hasattr(a, attr):
            va, vb = getattr(a, attr), getattr(b, attr)
            assert torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb, attr
    if arch.startswith("elic2022"):
        assert a.latent_codec["y"].groups == b.latent_codec["y"].groups == GROUPS


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_same_seed_builds_compressais_tensors(arch):
    """Names, order, shapes, dtypes and values of a freshly built network: CompressAI's
    initialisation, draw for draw."""
    a, b = ours(arch).state_dict(), theirs(arch).state_dict()
    if arch == "channel-context":
        a = without_context(a)
    assert list(a) == list(b)
    for k in b:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_compressais_weights_load_into_lrcodecs_network(arch):
    ref = perturbed(theirs(arch))
    state = ref.state_dict()
    if arch == "channel-context":
        state.update(ours(arch).context.state_dict(prefix="context."))
    net = network_from_state(state, arch)
    assert_same_networks(net, ref, arch)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_lrcodecs_weights_load_into_compressais_network(arch):
    """With CompressAI's own strict loader, coder-table buffers included."""
    net = perturbed(ours(arch, seed=5), seed=6)
    ref = theirs(arch)
    state = net.state_dict()
    ref.load_state_dict(without_context(state) if arch == "channel-context" else state, strict=True)
    assert_same_networks(net, ref, arch)
