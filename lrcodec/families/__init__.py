"""Model families: one module per family owns its architecture's whole graph (``base``
describes the protocol). A family is chosen by an explicit architecture name: the model
card's ``arch``, a zoo name (``ZOO``), or the key patterns of a checkpoint
(``arch_of_state``); never by the network's Python type.

Modules are imported on first use, so that ``lrcodec --help`` does not import torch.
"""

from __future__ import annotations

import importlib

from ..errors import LrcodecError
from ..settings import ZOO_LAMBDAS  # noqa: F401 (re-exported: the zoo's lambdas)

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

# CompressAI's coder tables (built by its ``update()``): the networks keep them, empty, for its
# state dicts and its loader; never part of an lrcodec model's weights or identity.
CODER_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")

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

# Where CompressAI 1.2.8 publishes the MSE weights of each zoo name (compressai.zoo.image's and
# image_vbr's model_urls; tests/families/test_families.py checks the copy): quality -> URL, or one URL for a
# variable-rate network's eight qualities. lrcodec never downloads them (``models.load_zoo``).
_ZOO_ROOT = "https://compressai.s3.amazonaws.com/models/v1"
ZOO_URLS: dict[str, dict[int, str] | str] = {
    "bmshj2018-factorized": {
        1: f"{_ZOO_ROOT}/bmshj2018-factorized-prior-1-446d5c7f.pth.tar",
        2: f"{_ZOO_ROOT}/bmshj2018-factorized-prior-2-87279a02.pth.tar",
        3: f"{_ZOO_ROOT}/bmshj2018-factorized-prior-3-5c6f152b.pth.tar",
        4: f"{_ZOO_ROOT}/bmshj2018-factorized-prior-4-1ed4405a.pth.tar",
        5: f"{_ZOO_ROOT}/bmshj2018-factorized-prior-5-866ba797.pth.tar",
        6: f"{_ZOO_ROOT}/bmshj2018-factorized-prior-6-9b02ea3a.pth.tar",
        7: f"{_ZOO_ROOT}/bmshj2018-factorized-prior-7-6dfd6734.pth.tar",
        8: f"{_ZOO_ROOT}/bmshj2018-factorized-prior-8-5232faa3.pth.tar",
    },
    "bmshj2018-hyperprior": {
        1: f"{_ZOO_ROOT}/bmshj2018-hyperprior-1-7eb97409.pth.tar",
        2: f"{_ZOO_ROOT}/bmshj2018-hyperprior-2-93677231.pth.tar",
        3: f"{_ZOO_ROOT}/bmshj2018-hyperprior-3-6d87be32.pth.tar",
        4: f"{_ZOO_ROOT}/bmshj2018-hyperprior-4-de1b779c.pth.tar",
        5: f"{_ZOO_ROOT}/bmshj2018-hyperprior-5-f8b614e1.pth.tar",
        6: f"{_ZOO_ROOT}/bmshj2018-hyperprior-6-1ab9c41e.pth.tar",
        7: f"{_ZOO_ROOT}/bmshj2018-hyperprior-7-3804dcbd.pth.tar",
        8: f"{_ZOO_ROOT}/bmshj2018-hyperprior-8-a583f0cf.pth.tar",
    },
    "mbt2018-mean": {
        1: f"{_ZOO_ROOT}/mbt2018-mean-1-e522738d.pth.tar",
        2: f"{_ZOO_ROOT}/mbt2018-mean-2-e54a039d.pth.tar",
        3: f"{_ZOO_ROOT}/mbt2018-mean-3-723404a8.pth.tar",
        4: f"{_ZOO_ROOT}/mbt2018-mean-4-6dba02a3.pth.tar",
        5: f"{_ZOO_ROOT}/mbt2018-mean-5-d504e8eb.pth.tar",
        6: f"{_ZOO_ROOT}/mbt2018-mean-6-a19628ab.pth.tar",
        7: f"{_ZOO_ROOT}/mbt2018-mean-7-d5d441d1.pth.tar",
        8: f"{_ZOO_ROOT}/mbt2018-mean-8-8089ae3e.pth.tar",
    },
    "mbt2018": {
        1: f"{_ZOO_ROOT}/mbt2018-1-3f36cd77.pth.tar",
        2: f"{_ZOO_ROOT}/mbt2018-2-43b70cdd.pth.tar",
        3: f"{_ZOO_ROOT}/mbt2018-3-22901978.pth.tar",
        4: f"{_ZOO_ROOT}/mbt2018-4-456e2af9.pth.tar",
        5: f"{_ZOO_ROOT}/mbt2018-5-b4a046dd.pth.tar",
        6: f"{_ZOO_ROOT}/mbt2018-6-7052e5ea.pth.tar",
        7: f"{_ZOO_ROOT}/mbt2018-7-8ba2bf82.pth.tar",
        8: f"{_ZOO_ROOT}/mbt2018-8-dd0097aa.pth.tar",
    },
    "cheng2020-anchor": {
        1: f"{_ZOO_ROOT}/cheng2020-anchor-1-dad2ebff.pth.tar",
        2: f"{_ZOO_ROOT}/cheng2020-anchor-2-a29008eb.pth.tar",
        3: f"{_ZOO_ROOT}/cheng2020-anchor-3-e49be189.pth.tar",
        4: f"{_ZOO_ROOT}/cheng2020-anchor-4-98b0b468.pth.tar",
        5: f"{_ZOO_ROOT}/cheng2020-anchor-5-23852949.pth.tar",
        6: f"{_ZOO_ROOT}/cheng2020-anchor-6-4c052b1a.pth.tar",
    },
    "cheng2020-attn": {
        1: f"{_ZOO_ROOT}/cheng2020_attn-mse-1-465f2b64.pth.tar",
        2: f"{_ZOO_ROOT}/cheng2020_attn-mse-2-e0805385.pth.tar",
        3: f"{_ZOO_ROOT}/cheng2020_attn-mse-3-2d07bbdf.pth.tar",
        4: f"{_ZOO_ROOT}/cheng2020_attn-mse-4-f7b0ccf2.pth.tar",
        5: f"{_ZOO_ROOT}/cheng2020_attn-mse-5-26c8920e.pth.tar",
        6: f"{_ZOO_ROOT}/cheng2020_attn-mse-6-730501f2.pth.tar",
    },
    "bmshj2018-hyperprior-vbr": f"{_ZOO_ROOT}/bmshj2018-hyperprior-mse-vbr-cddd26be.pth.tar",
    "mbt2018-mean-vbr": f"{_ZOO_ROOT}/mbt2018-mean-mse-vbr-45d095e9.pth.tar",
    "mbt2018-vbr": f"{_ZOO_ROOT}/mbt2018-mse-vbr-f12581a1.pth.tar",
}

# CompressAI's MSE zoo qualities 1-8: the lambda each was trained for (settings.ZOO_LAMBDAS),
# and the mean Kodak bpp of its mbt2018-mean at each (CompressAI's published results, results/image/kodak). A checkpoint that carries no
# lambda is refined for the quality whose rate is nearest its own (``refine.lambda_for``).
ZOO_KODAK_BPP = (0.1239, 0.1980, 0.3072, 0.4606, 0.6617, 0.9144, 1.2342, 1.6191)


def family(arch: str):
    """The family object of an architecture name."""
    if arch not in _REGISTRY:
        raise LrcodecError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHITECTURES)})")
    module, name = _REGISTRY[arch]
    return getattr(importlib.import_module(f".{module}", __name__), name)


# The families' checkpoint matchers (``match(state) -> arch or None``, each beside its family),
# most specific first: a variable-rate model holds its fixed-rate model's keys and more, a
# context model a hyperprior's.
_MATCHERS = ("vbr", "channel_context", "checkerboard", "autoregressive", "factorized", "hyperprior")


def arch_of_state(state: dict) -> str:
    """The architecture a CompressAI-format state dict holds, from its key patterns."""
    for module in _MATCHERS:
        arch = importlib.import_module(f".{module}", __name__).match(state)
        if arch is not None:
            return arch
    raise LrcodecError(f"not a checkpoint of an architecture lrcodec knows ({', '.join(ARCHITECTURES)}): "
                       "no h_s.4.weight and g_a.6.weight")
