"""CompressAI's own network of an architecture, as a reference: for tests and benchmarks
(``tests/families/test_reference.py``, ``bench/``) that compare lrcodec with CompressAI's classes, its
``update``/``compress``/``decompress`` coder and its ``aux_loss``. Never used at run time:
lrcodec's networks are its own (``lrcodec.families.layers``, ``priors``), and this module is the
one place in the package that imports ``compressai``.
"""

from __future__ import annotations

from . import CODER_BUFFERS, family


def compressai_class(arch: str):
    """CompressAI's model class of an architecture ("channel-context": its hyperprior part,
    ``MeanScaleHyperprior``: CompressAI has no channel context)."""
    import warnings

    with warnings.catch_warnings():  # its torch.jit.script decorators, which torch 2.14 deprecates loudly
        warnings.simplefilter("ignore", FutureWarning)
        import compressai.models as cm
        from compressai.models import sensetime

    return {
        "mean-scale": cm.MeanScaleHyperprior,
        "scale": cm.ScaleHyperprior,
        "channel-context": cm.MeanScaleHyperprior,
        "factorized": cm.FactorizedPrior,
        "factorized-relu": cm.FactorizedPriorReLU,
        "joint-autoregressive": cm.JointAutoregressiveHierarchicalPriors,
        "cheng2020-anchor": cm.Cheng2020Anchor,
        "cheng2020-attn": cm.Cheng2020Attention,
        "cheng2020-anchor-checkerboard": sensetime.Cheng2020AnchorCheckerboard,
        "elic2022-official": sensetime.Elic2022Official,
        "elic2022-chandelier": sensetime.Elic2022Chandelier,
        "scale-vbr": cm.ScaleHyperpriorVbr,
        "mean-scale-vbr": cm.MeanScaleHyperpriorVbr,
        "joint-autoregressive-vbr": cm.JointAutoregressiveHierarchicalPriorsVbr,
    }[arch]


def compressai_build(arch: str, N: int, M: int, shape: dict | None = None):
    """A freshly initialised CompressAI network of the size lrcodec's family builds
    (``family(arch).build(arch, N, M, shape)``): the same tensors from the same seed."""
    cls, shape = compressai_class(arch), shape or {}
    if arch in ("cheng2020-anchor", "cheng2020-attn", "cheng2020-anchor-checkerboard"):
        return cls(N)
    if arch.startswith("elic2022"):
        return cls(N, M, shape.get("groups"))
    if arch in ("scale-vbr", "mean-scale-vbr"):
        return cls(N, M, vr_entbttlnck=shape.get("z_step_network", True))
    return cls(N, M)


def compressai_network(arch: str, state: dict):
    """CompressAI's network of ``arch`` holding a state dict (an lrcodec network's, a
    checkpoint's), loaded with CompressAI's own strict ``load_state_dict``, in eval mode. The
    size comes from lrcodec's family (``dims``, ``shape_of``); coder tables the state lacks are
    taken empty, a channel-context model's context is left out, and a variable-rate
    checkpoint's unused ``QuantOffset`` is dropped, as CompressAI's ``from_state_dict`` does."""
    chosen = family(arch)
    N, M = chosen.dims(state)
    net = compressai_build(arch, N, M, chosen.shape_of(state, M))
    own = net.state_dict()
    context = arch == "channel-context"
    state = {k: v for k, v in state.items() if k != "QuantOffset" and not (context and k.startswith("context."))}
    state.update({k: v for k, v in own.items() if k.endswith(CODER_BUFFERS) and k not in state})
    net.load_state_dict(state)
    return net.eval()
