"""Model families: one module per family owns its architecture's whole graph (``base``
describes the protocol). A family is chosen by an explicit architecture name: the model
card's ``arch``, a zoo name (``ZOO``), or the key patterns of a checkpoint
(``arch_of_state``); never by the network's Python type.

Modules are imported on first use, so that ``lrcodec --help`` does not import torch.
"""

from __future__ import annotations

import importlib

from ..errors import LrcodecError

# arch -> (module, family object): the one table a new family is added to
_REGISTRY = {
    "mean-scale": ("hyperprior", "MEAN_SCALE"),
    "scale": ("hyperprior", "SCALE"),
    "channel-context": ("channel_context", "CHANNEL_CONTEXT"),
    "factorized": ("factorized", "FACTORIZED"),
    "factorized-relu": ("factorized", "FACTORIZED_RELU"),
    "joint-autoregressive": ("autoregressive", "JOINT_AUTOREGRESSIVE"),
    "cheng2020-anchor": ("autoregressive", "CHENG2020_ANCHOR"),
    "cheng2020-attn": ("autoregressive", "CHENG2020_ATTN"),
    "cheng2020-anchor-checkerboard": ("checkerboard", "CHENG2020_ANCHOR_CHECKERBOARD"),
    "elic2022-official": ("checkerboard", "ELIC2022_OFFICIAL"),
    "elic2022-chandelier": ("checkerboard", "ELIC2022_CHANDELIER"),
    "scale-vbr": ("vbr", "SCALE_VBR"),
    "mean-scale-vbr": ("vbr", "MEAN_SCALE_VBR"),
    "joint-autoregressive-vbr": ("vbr", "JOINT_AUTOREGRESSIVE_VBR"),
}
ARCHITECTURES = tuple(_REGISTRY)

# CompressAI's zoo names with pretrained weights (compressai.zoo.image.model_urls): (arch, highest
# quality). Its bmshj2018-factorized-relu has none (it loads the GDN model's); ReLU checkpoints
# load by their keys.
ZOO = {
    "bmshj2018-factorized": ("factorized", 8),
    "bmshj2018-hyperprior": ("scale", 8),
    "mbt2018-mean": ("mean-scale", 8),
    "mbt2018": ("joint-autoregressive", 8),
    "cheng2020-anchor": ("cheng2020-anchor", 6),
    "cheng2020-attn": ("cheng2020-attn", 6),
    # compressai.zoo.image_vbr: one network, its 8 rate levels as qualities
    "bmshj2018-hyperprior-vbr": ("scale-vbr", 8),
    "mbt2018-mean-vbr": ("mean-scale-vbr", 8),
    "mbt2018-vbr": ("joint-autoregressive-vbr", 8),
}

# CompressAI's MSE zoo qualities 1-8: the lambda each was trained for (compressai.zoo; its
# variable-rate networks carry the same list), and the mean Kodak bpp of its mbt2018-mean at
# each (CompressAI's published results, results/image/kodak). A checkpoint that carries no
# lambda is refined for the quality whose rate is nearest its own (``refine.lambda_for``).
ZOO_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
ZOO_KODAK_BPP = (0.1239, 0.1980, 0.3072, 0.4606, 0.6617, 0.9144, 1.2342, 1.6191)


def family(arch: str):
    """The family object of an architecture name."""
    if arch not in _REGISTRY:
        raise LrcodecError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHITECTURES)})")
    module, name = _REGISTRY[arch]
    return getattr(importlib.import_module(f".{module}", __name__), name)


def arch_of_state(state: dict) -> str:
    """The architecture a CompressAI-format state dict holds, from its key patterns."""
    keys = list(state)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has("QuantABCD."):  # the variable-rate models' restoration offsets
        if has("scale_to_context."):
            return "joint-autoregressive-vbr"
        return arch_of_state({k: v for k, v in state.items() if not k.startswith("QuantABCD.")}) + "-vbr"
    if has("context.nets."):
        return "channel-context"
    if has("latent_codec.y.channel_context."):
        # h_s starts with a transposed convolution (N, N, 5, 5) in both; Chandelier's ends in a
        # convolution (2M, 3N/2, 3, 3), CompressAI's ELIC in a transposed one (3N/2, 2N, 3, 3).
        try:
            N, last = state["latent_codec.hyper.h_s.0.weight"].shape[0], state["latent_codec.hyper.h_s.4.weight"]
        except KeyError as e:
            raise LrcodecError(f"not an ELIC checkpoint: missing tensor {e.args[0]}") from None
        return "elic2022-chandelier" if last.shape[1] == N * 3 // 2 else "elic2022-official"
    if has("latent_codec.y.context_prediction."):
        return "cheng2020-anchor-checkerboard"
    if has("context_prediction."):
        if not has("g_a.0.conv1."):
            return "joint-autoregressive"
        return "cheng2020-attn" if any(k.startswith("g_a.") and ".conv_a." in k for k in keys) else "cheng2020-anchor"
    if has("entropy_bottleneck.") and has("g_a.0.weight") and not has("h_s."):
        return "factorized" if has("g_a.1.beta") else "factorized-relu"
    try:
        h_s_out, M = state["h_s.4.weight"], state["g_a.6.weight"].shape[0]
    except KeyError as e:
        raise LrcodecError(f"not a checkpoint of an architecture lrcodec knows ({', '.join(ARCHITECTURES)}): "
                           f"missing tensor {e.args[0]}") from None
    # h_s ends in a conv with 2M outputs (mean-scale) or M outputs (scale).
    return "mean-scale" if h_s_out.shape[0] == 2 * M else "scale"


def channel_groups(state: dict) -> list[int]:
    """ELIC's channel group sizes, from its spatial contexts' weights (y0, y1, ...)."""
    groups = []
    while (key := f"latent_codec.y.latent_codec.y{len(groups)}.context_prediction.weight") in state:
        groups.append(state[key].shape[1])
    if not groups:
        raise LrcodecError("not an ELIC checkpoint: no channel groups (latent_codec.y.latent_codec.y0...)")
    return groups
