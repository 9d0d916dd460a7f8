"""The model registry: a name -> an architecture (``lrcodec.families``) and its weights.

A model can be named three ways:

* a shipped model in ``models/`` (``<name>.safetensors`` + ``<name>.json`` model card),
  chosen by name or by ``--quality`` (1 = lowest rate);
* a CompressAI zoo name (``lrcodec.families.ZOO``) with a quality, loaded from torch's hub
  cache, where CompressAI's own downloads go (lrcodec itself never downloads);
* a path to a checkpoint: our safetensors file, or a CompressAI state dict (``.pth``/``.tar``),
  loaded with ``weights_only=True`` so that an untrusted file cannot execute code.

A variable-rate network (``lrcodec.families.vbr``) is loaded at a rate level: ``--quality``
minus one, else its card's ``level``, else quality 3; each level has its own model id.

The architectures and their graphs are in ``lrcodec.families``.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import LrcodecError
from .families import CODER_BUFFERS, ZOO, ZOO_LAMBDAS, ZOO_URLS, arch_of_state, family

# CompressAI's coder tables, never part of a model's identity, and its variable-rate
# checkpoints' unused QuantOffset, which its own loader drops too.
_CODER_BUFFERS = (*CODER_BUFFERS, "QuantOffset")


# Runtime exports (``export_runtime``, read by lrcodec.runtime; the families whose ``portable`` is
# true have one): the version of the spec's layout, its suffix after the model's stem, and the
# graphs beside it.
EXPORT_VERSION = 1
SPEC, GRAPHS = ".runtime.json", ("g_s", "g_a", "h_a")


def models_dir() -> Path:
    """The folder of shipped models: ``$LRCODEC_MODELS``; else the package's ``weights/``
    (an installed wheel carries ``models/`` there, see pyproject.toml); else ``models/`` of the
    checkout the package runs from (an editable install)."""
    env = os.environ.get("LRCODEC_MODELS")
    if env:
        return Path(env)
    installed = Path(__file__).resolve().parent / "weights"
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "models"


@dataclass
class LoadedModel:
    """A network in eval mode plus what the codec needs to know about it."""

    net: Any  # the family's network (``lrcodec.families``: CompressAI's tensor names)
    name: str
    arch: str  # the architecture name, which chooses the family (``lrcodec.families``)
    card: dict = field(default_factory=dict)
    model_id: bytes = b""  # 8 bytes of SHA-256 over the weights, written into every file
    _exact: Any = field(default=None, repr=False, compare=False)
    _units: tuple = field(default=(), repr=False, compare=False)
    _weights: Any = field(default=None, repr=False, compare=False)  # weights_hash(net): ids at other levels

    @property
    def family(self):
        """The object that owns this model's graph (``lrcodec.families``)."""
        return family(self.arch)

    @cached_property
    def halos(self) -> tuple[int, int]:
        """(g_a's tile halo in pixels, g_s's in y positions), from their receptive fields."""
        return self.family.halos(self.net)

    def set_level(self, level: int) -> "LoadedModel":
        """Code at another rate level of a variable-rate network (``lrcodec.families.vbr``)."""
        self.family.set_level(self.net, level)
        self.model_id = model_id_of(self.net, self.family.identity(self.net), self._weights)
        self._exact, self._units = None, ()
        self.card.update(level=level, quality=level + 1, lmbda=self.family.lmbda(self.net))
        self.name = self.card["name"] = f"{self.card.get('base_name', self.name)}-q{level + 1}"
        return self

    def at_level(self, level: int) -> "LoadedModel":
        """This variable-rate network at another rate level, as a new model that shares the
        weights: this one is left as it is, so that threads may code several levels at once."""
        other = copy.copy(self)
        other.net, other.card = copy.copy(self.net), dict(self.card)  # a shallow module copy: own level
        return other.set_level(level)

    def to(self, device) -> "LoadedModel":
        """Move the transforms to a device (the exact entropy model stays on the CPU)."""
        self.net.to(device)
        return self

    @property
    def device(self):
        """Where the transforms run (the exact entropy model always runs on the CPU)."""
        return next(self.net.parameters()).device

    def latent_shapes(self, height: int, width: int) -> tuple[tuple, tuple]:
        """Shapes of y and z for a padded image of height x width pixels."""
        return self.family.latent_shapes(self.net, height, width)

    def y_units(self, shape: tuple) -> list:
        """The exact model's coding units of a y of this shape, in coding order; those of the
        last shape are kept (a file's encoder or decoder walks them several times; read once,
        so that a thread coding another shape at the same time cannot swap them)."""
        units = self._units
        if not units or units[0] != tuple(shape):
            units = self._units = (tuple(shape), self.exact.y_units(tuple(shape)))
        return units[1]

    # The coding protocol that ``lrcodec.runtime.RuntimeModel`` answers too, so that the codec
    # never asks which kind of model it has: pixels in, tiles through the transforms, arrays out.
    needs_torch = True

    @staticmethod
    def pixels(image, drop_alpha: bool = False):
        """(padded uint8 pixels (1, 3, Hp, Wp) as a tensor, mode to decode back to)."""
        import torch

        from .imageio import padded_pixels

        pixels, mode = padded_pixels(image, drop_alpha)
        return torch.from_numpy(pixels), mode

    def g_a(self, tile):
        """y of a pixel tile (float in [0, 1] or uint8), on the model's device, without grad."""
        import torch

        with torch.no_grad():
            tile = tile.to(self.device)
            return run_transform(self.net.g_a, tile if tile.is_floating_point() else tile.float().div_(255))

    def h_a(self, y):
        """z of y (None where the family has no z)."""
        import torch

        with torch.no_grad():
            return self.family.hyper_analysis(self.net, y)

    def g_s(self, y_hat):
        """8-bit pixels (uint8 on the CPU) of a y_hat tile."""
        import torch

        dtype = next(self.net.parameters()).dtype
        with torch.no_grad():
            return to_pixels(run_transform(self.net.g_s, y_hat.to(self.device, dtype))).cpu()

    @staticmethod
    def latent(array):
        """A latent as this model's codec holds it: a tensor."""
        import torch

        return torch.from_numpy(array)

    @property
    def sigma_min(self) -> float:
        """The lower bound of sigma the model was trained with, in its estimate and its coder."""
        from .format.entropy import SIGMA_MIN

        return self.card.get("sigma_min", SIGMA_MIN)

    @property
    def exact(self):
        """The exact entropy model (``lrcodec.format.exact``), built on first use: the part of the
        codec that a file's symbols depend on, identical on every machine."""
        if self._exact is None:
            from .format.entropy import sigma_table

            self._exact = self.family.exact(self.net, sigma_table(self.sigma_min))
        return self._exact


def to_pixels(x):
    """Clamp to [0, 1] and round to 8 bits: (1, 3, H, W) float -> uint8 tensor."""
    import torch

    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def run_transform(layers, x):
    """``layers(x)`` for g_a or g_s; on the CPU with channels-last activations, whose oneDNN
    kernels run these transforms fastest (``bench/threads.py``). Float arithmetic: results may
    differ in the last bits between thread counts, CPUs and kernels (docs/portability.md, "What a file
    needs to decode elsewhere"). Nothing process-wide is changed, so calls from other threads
    leave this one's kernels and thread count as they were (tests/test_codec.py); that the same
    call then gives the same bits rests on oneDNN's run-to-run reproducibility at a fixed
    thread count, which no library guarantees."""
    import torch

    if x.device.type == "cpu" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return layers(x)


def build_network(arch: str, N: int, M: int, shape: dict | None = None):
    """A freshly initialised network of the given architecture (``shape``: more of it than
    (N, M), such as a channel-context model's slice networks)."""
    return family(arch).build(arch, N, M, shape)


def weights_of(net) -> dict:
    """The state dict without CompressAI's derived coder tables, as contiguous fp32 CPU tensors."""
    return {
        k: v.detach().float().cpu().contiguous()
        for k, v in net.state_dict().items()
        if not any(k.endswith(b) for b in _CODER_BUFFERS)
    }


def weights_hash(net):
    """SHA-256 over the weights' sorted names, shapes and fp32 bytes (not yet finished)."""
    h = hashlib.sha256()
    for k, v in sorted(weights_of(net).items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.numpy().tobytes())
    return h


def model_id_of(net, identity: bytes = b"", weights=None) -> bytes:
    """8-byte identifier of the weights (``weights_hash``, or ``weights`` when it is known),
    then of what else the family says the model is: a variable-rate network's level."""
    h = (weights_hash(net) if weights is None else weights).copy()
    h.update(identity)
    return h.digest()[:8]


def infer_architecture(state: dict) -> tuple[str, int, int]:
    """(arch, N, M) from the key patterns and tensor shapes of a CompressAI-format state dict."""
    arch = arch_of_state(state)
    return (arch, *family(arch).dims(state))


def network_from_state(state: dict, arch: str | None = None):
    """Build the network a state dict describes and load it (coder tables may be absent)."""
    arch = arch or arch_of_state(state)
    chosen = family(arch)
    import torch

    try:
        N, M = chosen.dims(state)
        net = build_network(arch, N, M, chosen.shape_of(state, M))
        state = {k: v for k, v in state.items() if not any(k.endswith(b) for b in _CODER_BUFFERS)}
        # nn.Module's loader: CompressAI's own insists on its coder tables, which we rebuild.
        missing, unexpected = torch.nn.Module.load_state_dict(net, state, strict=False)
    except (KeyError, ValueError, RuntimeError, AssertionError) as e:
        # a weight of another shape, a missing tensor, a shape CompressAI's constructor refuses
        raise LrcodecError(f"checkpoint does not match a {arch} model: {' '.join(str(e).split())[:300]}") from None
    missing = [k for k in missing if not any(k.endswith(b) for b in _CODER_BUFFERS)]
    if missing or unexpected:
        raise LrcodecError(
            f"checkpoint does not match a {arch} N={N} M={M} model "
            f"(missing: {missing[:3]}, unexpected: {unexpected[:3]})"
        )
    return chosen.prepare(net.eval())


def _finish(net, name: str, arch: str, card: dict, quality: int | None = None) -> LoadedModel:
    """The loaded model; a variable-rate one at rate level ``quality`` - 1 (else the card's
    level, else the family's default)."""
    net = net.float().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    weights = weights_hash(net)
    model = LoadedModel(net=net, name=name, arch=arch, card=card, model_id=model_id_of(net, weights=weights),
                        _weights=weights)
    if model.family.rate_levels(net):
        card.setdefault("base_name", name)
        model.set_level(quality - 1 if quality is not None else card.get("level", model.family.level(net)))
    return model


def load_safetensors(path: Path, card: dict | None = None, quality: int | None = None) -> LoadedModel:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise LrcodecError(f"cannot read weights {path}: {e}") from None
    if card is None:
        card_path = path.with_suffix(".json")
        card = json.loads(card_path.read_text()) if card_path.exists() else {}
    state = {k: v.float() for k, v in state.items()}
    arch = card.get("arch") or arch_of_state(state)
    return _finish(network_from_state(state, arch), card.get("name", path.stem), arch, card, quality)


def load_checkpoint(path: Path, arch: str | None = None, quality: int | None = None) -> LoadedModel:
    """A CompressAI-style ``torch.save`` checkpoint, loaded without unpickling code; the
    architecture is ``arch`` or else read from the key patterns (``quality``: the rate level of
    a variable-rate network)."""
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise LrcodecError(f"cannot load checkpoint {path}: {str(e).splitlines()[0]}") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "network"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise LrcodecError(f"{path}: checkpoint holds no state dict")
    state = _compressai_keys(obj)
    arch = arch or arch_of_state(state)
    return _finish(network_from_state(state, arch), path.stem, arch, {"source": str(path), "arch": arch}, quality)


def _compressai_key(key: str) -> str:
    """One key renamed as CompressAI 1.2.8's ``compressai.zoo.pretrained.rename_key`` does."""
    if key.startswith("module."):  # saved from a DataParallel wrapper
        key = key[7:]
    if ".downsample." in key:  # ResidualBlockWithStride's old name of its skip
        return key.replace("downsample", "skip")
    if key.startswith("entropy_bottleneck."):  # the bottleneck's old ParameterList names
        for old, new in (("_biases.", "_bias"), ("_matrices.", "_matrix"), ("_factors.", "_factor")):
            if key.startswith(f"entropy_bottleneck.{old}"):
                return f"entropy_bottleneck.{new}{key[-1]}"  # CompressAI keeps the last character only
    return key


def _compressai_keys(state: dict) -> dict:
    """A state dict's tensors under today's CompressAI names, renamed as CompressAI's
    ``load_pretrained`` does: DataParallel's ``module.``, old entropy-bottleneck and
    residual-block names."""
    return {_compressai_key(k): v for k, v in state.items() if hasattr(v, "shape")}


def zoo_weights_path(name: str, quality: int) -> tuple[Path, str]:
    """(where torch's hub cache keeps CompressAI's MSE weights of a zoo model, their URL)."""
    import torch

    urls = ZOO_URLS[name]
    url = urls if isinstance(urls, str) else urls[quality]
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1], url


def load_zoo(name: str, quality: int) -> LoadedModel:
    """CompressAI's pretrained weights of a zoo model, from torch's hub cache (``$TORCH_HOME``,
    where ``compressai.zoo`` downloads them), loaded with ``weights_only=True``."""
    arch, qualities = ZOO[name]
    if not 1 <= quality <= qualities:
        raise LrcodecError(f"{name}: quality must be 1-{qualities}, got {quality}")
    path, url = zoo_weights_path(name, quality)
    if not path.is_file():
        raise LrcodecError(f"{name} quality {quality} is not in torch's hub cache: download {url} to {path}")
    model = load_checkpoint(path, arch, quality)
    model.name = model.card["name"] = f"{name}-q{quality}"
    model.card.update(source="compressai zoo", zoo=name, quality=quality, base_name=name)
    model.card.setdefault("lmbda", ZOO_LAMBDAS[quality - 1])  # a variable-rate network's level has it already
    return model


def shipped_models(current_only: bool = True) -> list[dict]:
    """Model cards of the shipped models, lowest rate first: the current set (what --quality
    picks), or with ``current_only=False`` also the retired ones, which stay for decoding."""
    cards = []
    for card_path in sorted(models_dir().glob("*.json")):
        if not card_path.name.endswith(SPEC) and card_path.with_suffix(".safetensors").exists():
            card = json.loads(card_path.read_text())
            card.setdefault("name", card_path.stem)
            if card.get("current", True) or not current_only:
                cards.append(card)
    return sorted(cards, key=lambda c: c.get("lmbda", 0.0))


DEFAULT_QUALITY = 3


def load_model(name: str | None = None, quality: int | None = None) -> LoadedModel:
    """Resolve a model name, zoo name or checkpoint path (see the module docstring)."""
    if name and name in ZOO:
        return load_zoo(name, quality or DEFAULT_QUALITY)
    if name and (os.sep in name or Path(name).suffix or Path(name).exists()):
        path = Path(name)
        if not path.is_file():
            raise LrcodecError(f"model file not found: {name}")
        if path.suffix == ".safetensors":
            return load_safetensors(path, quality=quality)
        return load_checkpoint(path, quality=quality)
    card = shipped_card(name, quality)
    return load_safetensors(models_dir() / f"{card['name']}.safetensors", card)


def shipped_card(name: str | None, quality: int | None = None) -> dict:
    """The card of the shipped model a name (current or retired) or else a quality (of the
    current set; the default without either) chooses."""
    cards = shipped_models()
    if name:
        for card in shipped_models(current_only=False):
            if card["name"] == name:
                return card
        known = ", ".join([c["name"] for c in cards] + list(ZOO))
        raise LrcodecError(f"unknown model {name!r} (known: {known}, or a checkpoint path)")
    if not cards:
        raise LrcodecError(f"no shipped models in {models_dir()}")
    q = quality if quality is not None else min(DEFAULT_QUALITY, len(cards))
    if not 1 <= q <= len(cards):
        raise LrcodecError(f"quality must be 1-{len(cards)} for the shipped models, got {q}")
    return cards[q - 1]


def find_model_by_id(model_id: bytes) -> LoadedModel:
    """The shipped model, current or retired, whose weights hash to ``model_id`` (cards cache the id)."""
    cards = shipped_models(current_only=False)
    for card in sorted(cards, key=lambda c: c.get("model_id") != model_id.hex()):
        if card.get("model_id") not in (None, model_id.hex()):
            continue
        model = load_safetensors(models_dir() / f"{card['name']}.safetensors", card)
        if model.model_id == model_id:
            return model
    raise LrcodecError(
        f"file was made with model {model_id.hex()}, which is not among the shipped models; "
        "pass it with --model NAME|PATH")


def widen_latents(net, arch: str, M: int, new_scale: float = 0.01):
    """A mean-scale network with M latent channels that computes what ``net`` computes.

    Why: M bounds what a model can reconstruct however many bits it spends (a model with
    M = 96 decodes kodim05 at 30 dB even without quantization), so high-rate models need more
    channels, and training them from scratch costs far more than growing a trained one.
    The new y channels get tiny analysis weights, so they quantize to 0 and the decoded image
    and (almost) the bits are unchanged; the synthesis keeps random weights for them, so the
    straight-through gradient reaches them (zero there would leave them unused forever).
    Weights of h_a and h_s that read a new channel or a new hidden unit are zero, and the new
    (sigma, mu) outputs are zero (sigma is clamped to its lower bound)."""
    import torch

    if arch != "mean-scale":
        raise LrcodecError(f"only mean-scale models can be widened, not {arch}")
    old = weights_of(net)
    N, M0 = old["g_a.0.weight"].shape[0], old["g_a.6.weight"].shape[0]
    if M < M0:
        raise LrcodecError(f"cannot narrow a model from M={M0} to M={M}")
    wide = build_network("mean-scale", N, M)
    state = {k: v.clone() for k, v in wide.state_dict().items()}
    for k, v in old.items():
        state[k][tuple(slice(0, n) for n in v.shape)] = v
    state["g_a.6.weight"][M0:] *= new_scale
    state["g_a.6.bias"][M0:] = 0
    # conv weights are [out, in, ...], deconv weights [in, out, ...].
    state["h_a.0.weight"][:, M0:] = 0
    state["h_s.2.weight"][M0:] = 0
    h = old["h_s.2.weight"].shape[1]
    # h_s's last conv: inputs beyond the old hidden units are zero; its outputs are
    # [sigma (M), mu (M)], so the old mu rows move from M0 to M.
    last_w, last_b = torch.zeros_like(state["h_s.4.weight"]), torch.zeros_like(state["h_s.4.bias"])
    last_w[:M0, :h], last_w[M : M + M0, :h] = old["h_s.4.weight"][:M0], old["h_s.4.weight"][M0:]
    last_b[:M0], last_b[M : M + M0] = old["h_s.4.bias"][:M0], old["h_s.4.bias"][M0:]
    state["h_s.4.weight"], state["h_s.4.bias"] = last_w, last_b
    torch.nn.Module.load_state_dict(wide, state)  # CompressAI's loader would rebuild coder tables
    return wide.eval()


def save_model(net, path: Path, card: dict, fp16: bool = True, runtime: bool = True) -> None:
    """Write weights (fp16 by default) and the JSON model card beside them, and (``runtime``,
    for a portable family) the runtime export that codes without torch."""
    from safetensors.torch import save

    from .imageio import write_atomic

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: (v.half() if fp16 else v) for k, v in weights_of(net).items()}
    write_atomic(str(path), save(weights), force=True)  # safetensors' save_file makes it 0600
    # The id is that of the weights as they load back (fp16 rounding included).
    model = load_safetensors(path, dict(card))
    card = dict(card, name=path.stem, model_id=model.model_id.hex())
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    if runtime and model.family.portable:
        model.name = path.stem
        export_runtime(model, path.with_suffix(""))


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_runtime(model: LoadedModel, stem: Path) -> Path:
    """Write a loaded model's runtime export (``lrcodec.runtime``): ``<stem>.runtime.json`` and
    its graphs ``<stem>.g_s.onnx``, ``<stem>.g_a.onnx`` and ``<stem>.h_a.onnx``, for the weights
    in ``<stem>.safetensors`` (the model's own, or those ``lrcodec.runtime`` writes for a
    checkpoint), which its exact path reads. Needs torch and onnx. Returns the spec's path."""
    import torch

    if not model.family.portable:
        raise LrcodecError(f"{model.arch} models code with torch only")
    net, exact = model.net, model.exact
    weights = stem.with_name(stem.name + ".safetensors")
    names = {id(t): k for k, t in net.state_dict(keep_vars=True).items()}
    bottleneck = model.family.hyper(net).entropy_bottleneck
    spec = {
        "export_version": EXPORT_VERSION, "name": model.name, "arch": model.arch, "model_id": model.model_id.hex(),
        "N": bottleneck.channels, "M": model.family.latent_channels(net), "sigma_min": model.sigma_min,
        "mean_scale": exact.mean_scale, "g_a_halo": model.halos[0], "g_s_halo": model.halos[1],
        "weights_sha256": file_digest(weights),
        "h_s": exact.h_s.spec(),
        "prior": {"layers": [[names[id(m)], names[id(b)], None if f is None else names[id(f)]] for m, b, f in bottleneck.layers()],
                  "quantiles": names[id(bottleneck.quantiles)]},
        "card": model.card,
    }

    class HyperAnalysis(torch.nn.Module):  # the family's h_a (of |y| for the scale model) as a module
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, y):
            return model.family.hyper_analysis(self.net, y)

    stem.parent.mkdir(parents=True, exist_ok=True)
    M = spec["M"]
    graphs = {"g_s": (net.g_s, torch.zeros((1, M, 4, 6))), "g_a": (net.g_a, torch.zeros((1, 3, 64, 96))),
              "h_a": (HyperAnalysis(), torch.zeros((1, M, 4, 8)))}
    from .imageio import write_atomic

    unique = f".{os.getpid()}.{threading.get_ident()}.tmp"  # processes may export one checkpoint at once
    # The TorchScript exporter, which takes free tile sizes as dynamic axes (torch.export's needs
    # onnxscript besides onnx); torch < 2.5 has it alone, and no ``dynamo`` keyword.
    torchscript = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    for graph, (module, example) in graphs.items():
        path = stem.with_name(f"{stem.name}.{graph}.onnx")
        tmp = Path(str(path) + unique)
        with torch.no_grad():
            torch.onnx.export(module, (example,), str(tmp), input_names=["input"], output_names=["output"],
                              opset_version=17, dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "H", 3: "W"}},
                              **torchscript)
        _store_half(tmp)
        os.replace(tmp, path)
    path = stem.with_name(stem.name + SPEC)  # last: a spec is read only with its graphs in place
    write_atomic(str(path), (json.dumps(spec, indent=1) + "\n").encode(), force=True)
    return path


def _store_half(path: Path) -> None:
    """Store an ONNX graph's float32 weights in float16 where that is exact (fp16 weights, as
    shipped), each read back through a Cast to float32 (which onnxruntime folds when it loads
    the graph): the same graph at half the bytes."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    casts = []
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32 or not np.array_equal(a.astype(np.float16).astype(np.float32), a):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(a.astype(np.float16), f"{name}.fp16"))
        casts.append(helper.make_node("Cast", [f"{name}.fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(path))
