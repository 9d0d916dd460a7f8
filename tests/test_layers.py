"""lrcodec's own networks (``lrcodec.families.layers``, ``priors`` and each family's classes)
against CompressAI 1.2.8's, which they replace at run time: for every architecture the same
state dict (names, shapes, dtypes), the same tensors from the same seed, the same module tree
(what the integer networks and the tile halos are read from), the same outputs of every
sub-network lrcodec runs, within float tolerance, in both directions (CompressAI's weights
in lrcodec's network, lrcodec's in CompressAI's, with its strict loader); then the shared
layers' gradients, checkpoint key renaming and the zoo URLs. CompressAI is the reference
here and in bench/ only (``lrcodec.families.reference``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lrcodec.exact import FactorizedPrior, IntegerNetwork, as_f64, softplus, tanh
from lrcodec.families import ARCHITECTURES, ZOO, ZOO_URLS, family
from lrcodec.families import layers, priors
from lrcodec.families.reference import compressai_build
from lrcodec.models import _compressai_keys, build_network, network_from_state

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
            ia, ib = IntegerNetwork(ma[path]), IntegerNetwork(mb[path])  # what the coder runs
            assert ia.radius == ib.radius and len(ia.layers) == len(ib.layers), path
            fixed = torch.round(x.double().clamp(-4, 4) * 2.0**16)
            assert torch.equal(ia(fixed), ib(fixed)), path
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


@pytest.mark.parametrize("arch", ["mean-scale", "scale-vbr"])
def test_the_factorized_prior_reads_both_namings(arch):
    """``FactorizedPrior.of`` (the coder's z prior) through ``layers()``: the transformed
    tensors of CompressAI's ParameterLists and of its variable-rate ``_matrix{i}`` names."""
    ref_net = perturbed(theirs(arch))
    ref, eb = ref_net.entropy_bottleneck, network_from_state(ref_net.state_dict(), arch).entropy_bottleneck
    prior, n = FactorizedPrior.of(eb), len(ref.filters) + 1
    for i, (matrix, bias, factor) in enumerate(prior.layers):
        named = (lambda kind, j: getattr(ref, f"_{kind}{j}")) if arch.endswith("vbr") else \
            (lambda kind, j: getattr(ref, {"matrix": "matrices", "bias": "biases", "factor": "factors"}[kind])[j])
        assert np.array_equal(matrix, softplus(as_f64(named("matrix", i))))
        assert np.array_equal(bias, as_f64(named("bias", i))[..., 0])
        assert (factor is None) == (i == n - 1)
        if factor is not None:
            assert np.array_equal(factor, tanh(as_f64(named("factor", i)))[..., 0])
    assert np.array_equal(prior.medians, as_f64(ref.quantiles[:, 0, 1]))


@pytest.mark.parametrize("vbr", [False, True])
@pytest.mark.parametrize("stop_gradient", [False, True])
def test_entropy_bottleneck_logits_loss_and_gradients(vbr, stop_gradient):
    from compressai.entropy_models import EntropyBottleneck, EntropyBottleneckVbr

    ref = (EntropyBottleneckVbr if vbr else EntropyBottleneck)(6)
    eb = (priors.EntropyBottleneckVbr if vbr else priors.EntropyBottleneck)(6)
    perturbed(ref)
    eb.load_state_dict(ref.state_dict())
    t = (5 * torch.randn(6, 1, 40)).requires_grad_(True)
    t2 = t.detach().clone().requires_grad_(True)
    (eb._logits_cumulative(t, stop_gradient).sin().sum() + eb.loss()).backward()
    (ref._logits_cumulative(t2, stop_gradient).sin().sum() + ref.loss()).backward()
    torch.testing.assert_close(t.grad, t2.grad, **TOL)
    reference = dict(ref.named_parameters())
    assert list(reference) == [n for n, _ in eb.named_parameters()]
    for name, p in eb.named_parameters():
        q = reference[name]
        if p.grad is None or q.grad is None:
            assert p.grad is None and q.grad is None, name  # stop_gradient: none reaches the density
        else:
            torch.testing.assert_close(p.grad, q.grad, **TOL, msg=lambda m: f"{name}: {m}")
    assert eb.quantiles.grad is not None  # the aux loss trains the quantiles only
    assert torch.equal(eb.logits_cumulative(t, stop_gradient), eb._logits_cumulative(t, stop_gradient))


def test_aux_loss_is_every_entropy_bottlenecks_quantile_loss():
    """CompressAI's aux_loss where it has one; the variable-rate bottleneck's loss counts too."""
    net = perturbed(ours("mean-scale-vbr"))
    assert isinstance(net.entropy_bottleneck, priors.EntropyBottleneckVbr)
    torch.testing.assert_close(net.aux_loss(), net.entropy_bottleneck.loss())
    net.aux_loss().backward()
    grads = {n for n, p in net.named_parameters() if p.grad is not None}
    assert grads == {"entropy_bottleneck.quantiles"}


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_forward_and_gradients_are_compressais(inverse):
    from compressai.layers import GDN

    ref, gdn = GDN(8, inverse=inverse), layers.GDN(8, inverse=inverse)
    assert shapes(ref.state_dict()) == shapes(gdn.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(v, gdn.state_dict()[k]), k
    perturbed(ref)
    gdn.load_state_dict(ref.state_dict())
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    w = torch.randn(2, 8, 5, 5)
    out, out2 = gdn(x), ref(x2)
    torch.testing.assert_close(out, out2, **TOL)
    (out * w).sum().backward()
    (out2 * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, **TOL)
    torch.testing.assert_close(gdn.beta.grad, ref.beta.grad, **TOL)
    torch.testing.assert_close(gdn.gamma.grad, ref.gamma.grad, **TOL)


def test_lower_bound_gradient_is_compressais():
    """max(x, bound), the gradient passing where x >= bound or where it would push x up."""
    from compressai.ops import LowerBound

    x = torch.tensor([-2.0, -0.5, 0.1, 0.1, 0.5, 2.0, -1.0, 3.0], requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    g = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, -2.0, 2.0])
    ours_, theirs_ = layers.LowerBound(0.1), LowerBound(0.1)
    assert torch.equal(ours_.bound, theirs_.bound) and list(ours_.state_dict()) == ["bound"]
    out, out2 = ours_(x), theirs_(x2)
    assert torch.equal(out, out2)
    out.backward(g)
    out2.backward(g)
    assert torch.equal(x.grad, x2.grad)
    assert x.grad.tolist() == [0.0, -1.0, 1.0, -1.0, 1.0, -1.0, -2.0, 2.0]


@pytest.mark.parametrize("checkerboard", [False, True])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_convolutions_are_compressais(checkerboard, mask_type):
    from compressai.layers import CheckerboardMaskedConv2d, MaskedConv2d

    cls, ref_cls = ((layers.CheckerboardMaskedConv2d, CheckerboardMaskedConv2d) if checkerboard
                    else (layers.MaskedConv2d, MaskedConv2d))
    torch.manual_seed(0)
    conv = cls(3, 6, kernel_size=5, padding=2, mask_type=mask_type)
    torch.manual_seed(0)
    ref = ref_cls(3, 6, kernel_size=5, padding=2, mask_type=mask_type)
    assert isinstance(conv, nn.Conv2d) and torch.equal(conv.mask, ref.mask) and torch.equal(conv.weight, ref.weight)
    x = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(conv(x), ref(x), **TOL)
    assert torch.equal(conv.weight, ref.weight)  # both zero the masked taps in forward
    with pytest.raises(ValueError):
        cls(3, 6, kernel_size=5, mask_type="C")


def test_old_checkpoint_keys_are_renamed_as_compressais_loader_does():
    from compressai.zoo.pretrained import load_pretrained

    t = torch.zeros(1)
    state = {"module.g_a.0.conv1.weight": t, "module.g_a.0.downsample.weight": t, "g_a.2.downsample.bias": t,
             "entropy_bottleneck._biases.0": t, "entropy_bottleneck._matrices.3": t,
             "entropy_bottleneck._factors.2": t, "module.entropy_bottleneck._biases.1": t,
             "entropy_bottleneck._matrices.12": t, "entropy_bottleneck.quantiles": t,
             "latent_codec.hyper.entropy_bottleneck._biases.0": t, "module.h_a.downsample.downsample.w": t,
             "module.module.x": t, "epoch": 3, "names": ["a"]}
    renamed = _compressai_keys(state)
    expected = load_pretrained({k: v for k, v in state.items() if hasattr(v, "shape")})
    assert list(renamed) == list(expected)
    assert all(renamed[k] is expected[k] for k in expected)
    assert "entropy_bottleneck._bias0" in renamed and "g_a.0.skip.weight" in renamed


def test_zoo_urls_are_compressais():
    from compressai.zoo.image import model_urls
    from compressai.zoo.image_vbr import model_urls as vbr_urls

    assert set(ZOO_URLS) == set(ZOO) == set(model_urls) | set(vbr_urls)
    for name, urls in model_urls.items():
        assert ZOO_URLS[name] == urls["mse"]
        assert sorted(urls["mse"]) == list(range(1, ZOO[name][1] + 1))
    for name, urls in vbr_urls.items():
        assert ZOO_URLS[name] == urls["mse"]


def test_coding_imports_no_compressai(tmp_path):
    """Loading a network of every architecture, encoding and decoding: CompressAI stays
    unimported (it is the tests' and benchmarks' reference only)."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from conftest import photo_like
from test_families import tiny, TINY
from lrcodec import codec
models = [tiny(arch) for arch in TINY]
data = codec.encode_image(photo_like(64, 48), models[0]).data
assert codec.decode_image(data, models[0]).size == (64, 48)
bad = sorted(m for m in sys.modules if m.split(".")[0] == "compressai")
assert not bad, bad
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
