"""The entropy models' float parts (``lrcodec.families.priors``) against CompressAI's: the
factorized density in both of its namings, its gradients, and the quantiles' auxiliary loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrcodec.families import priors
from lrcodec.format.exact import FactorizedPrior, as_f64, softplus, tanh
from lrcodec.models import network_from_state
from test_reference import TOL, ours, perturbed, theirs


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
    torch.testing.assert_close(eb.logits_cumulative(t, stop_gradient), eb._logits_cumulative(t, stop_gradient),
                               **TOL)  # CompressAI's name, the same density (two float calls: within tolerance)


def test_aux_loss_is_every_entropy_bottlenecks_quantile_loss():
    """CompressAI's aux_loss where it has one; the variable-rate bottleneck's loss counts too."""
    net = perturbed(ours("mean-scale-vbr"))
    assert isinstance(net.entropy_bottleneck, priors.EntropyBottleneckVbr)
    torch.testing.assert_close(net.aux_loss(), net.entropy_bottleneck.loss())
    net.aux_loss().backward()
    grads = {n for n, p in net.named_parameters() if p.grad is not None}
    assert grads == {"entropy_bottleneck.quantiles"}


@pytest.mark.parametrize("old", ["_{one}{i}", "_{many}.{i}"])
def test_checkpoints_with_compressais_older_names_load(old, tmp_path):
    """CompressAI's zoo files predate its ParameterLists: their bottleneck tensors are
    ``_matrix0``, ``_bias0``, ``_factor0`` (or, older still, ``_matrices.0``, ...). They load
    into the same network, with the same model id, as CompressAI's own loader maps them."""
    from family_checks import tiny
    from lrcodec.models import load_model

    model = tiny("mean-scale")
    one = {"matrices": "matrix", "biases": "bias", "factors": "factor"}
    state = {}
    for key, value in model.net.state_dict().items():
        kind, _, i = key.removeprefix("entropy_bottleneck.").partition(".")
        renamed = key.startswith("entropy_bottleneck.") and kind in one
        state[f"entropy_bottleneck.{old.format(one=one[kind], many=kind, i=i)}" if renamed else key] = value
    assert "entropy_bottleneck.matrices.0" not in state and len(state) == len(model.net.state_dict())
    torch.save(state, tmp_path / "old.pth.tar")
    assert load_model(str(tmp_path / "old.pth.tar")).model_id == model.model_id
