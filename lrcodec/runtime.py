"""Decoding and the plain encode without torch: a hyperprior model's exact path rebuilt in
numpy from its weights, and its transforms g_s, g_a and h_a as ONNX graphs that onnxruntime runs.

A model's *runtime export* lies beside its weights (``models/`` for the shipped ones, the cache
for a user's checkpoint):

* ``<stem>.runtime.json``: what the file's symbols depend on besides the weights (the integer
  h_s's layers by tensor name, z's prior by tensor name, the sigma table's lower bound, the
  model id), the tile halos, and the model card;
* ``<stem>.g_s.onnx``, ``<stem>.g_a.onnx``, ``<stem>.h_a.onnx``: the transforms, exported by
  ``torch.onnx`` with the tile's height and width free.

They are written by ``lrcodec.models.export_runtime`` from a loaded model (which needs torch
and onnx: ``save_model`` does it when a model is made); coding with them needs numpy,
safetensors, constriction and onnxruntime only. The exact path is the same code as the torch
coder's (``lrcodec.format.exact``, ``lrcodec.families.coding``) fed with the same weights, so a
file decodes to the same symbols bit for bit; the transforms are float arithmetic either way,
whose pixels may differ in the last level (``tests/test_runtime.py`` bounds it, and
``bench/decode.py`` measures it over Kodak), and whose y may round the other way where it lies
within about 1e-6 of a rounding boundary, as between machines.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import LrcodecError
from .families.coding import ExactHyperprior
from .format.entropy import sigma_table
from .format.exact import FactorizedPrior, IntegerNetwork
from .families import ZOO
from .models import (EXPORT_VERSION, GRAPHS, SPEC, export_runtime, file_digest, models_dir, shipped_card,
                     shipped_models)

TORCH_ONLY = ".torch-only"  # beside a cache key: that checkpoint's architecture has no export


def cache_dir() -> Path:
    """Where exports of users' checkpoints are kept: ``$LRCODEC_CACHE``, else
    ``$XDG_CACHE_HOME/lrcodec``, else ``~/.cache/lrcodec``."""
    env = os.environ.get("LRCODEC_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lrcodec"


def export_checkpoint(source: Path, quiet: bool = False) -> Path | None:
    """The cached export of a user's checkpoint (made now if missing: that needs torch, and is
    said on stderr), keyed by the checkpoint's bytes; None where its architecture decodes with
    torch only (remembered, so that it is loaded once to find out). The key holds the export
    version, so that another lrcodec makes its own."""
    key = f"{file_digest(source)[:24]}-v{EXPORT_VERSION}"
    stem = cache_dir() / key
    spec = cache_dir() / f"{key}{SPEC}"
    if spec.is_file() and all((cache_dir() / f"{key}.{graph}.onnx").is_file() for graph in GRAPHS):
        return spec
    if (cache_dir() / f"{key}{TORCH_ONLY}").is_file():
        return None
    from .imageio import write_atomic
    from .models import load_model, weights_of

    model = load_model(str(source))
    cache_dir().mkdir(parents=True, exist_ok=True)
    if not model.family.portable:
        write_atomic(str(cache_dir() / f"{key}{TORCH_ONLY}"), f"{model.arch}\n".encode(), force=True)
        return None
    if not quiet:
        print(f"lrcodec: exporting {source} to {cache_dir()} to code without torch (once; this step imports torch)",
              file=sys.stderr)
    from safetensors.torch import save

    weights = cache_dir() / f"{key}.safetensors"
    write_atomic(str(weights), save(weights_of(model.net)), force=True)
    return export_runtime(model, stem)


# ---------------------------------------------------------------- reading one


@dataclass
class RuntimeModel:
    """A model without torch: what ``lrcodec.codec`` decodes and plain-encodes with in place of
    a ``LoadedModel``. Its graphs' onnxruntime sessions are made on first use and run from any
    thread."""

    spec: dict
    exact: ExactHyperprior
    stem: Path  # the graphs are <stem>.g_s.onnx, <stem>.g_a.onnx and <stem>.h_a.onnx
    needs_torch = False  # the protocol ``LoadedModel`` answers too

    @staticmethod
    def pixels(image, drop_alpha: bool = False) -> tuple[np.ndarray, str]:
        """(padded uint8 pixels (1, 3, Hp, Wp), mode to decode back to)."""
        from .imageio import padded_pixels

        return padded_pixels(image, drop_alpha)

    @staticmethod
    def latent(array: np.ndarray) -> np.ndarray:
        """A latent as the codec holds it without torch: the array itself."""
        return array

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def arch(self) -> str:
        return self.spec["arch"]

    @property
    def card(self) -> dict:
        return self.spec["card"]

    @property
    def model_id(self) -> bytes:
        return bytes.fromhex(self.spec["model_id"])

    @property
    def halos(self) -> tuple[int, int]:
        """(g_a's tile halo in pixels, g_s's in y positions), as ``LoadedModel.halos``."""
        return self.spec["g_a_halo"], self.spec["g_s_halo"]

    def latent_shapes(self, height: int, width: int) -> tuple[tuple, tuple]:
        """Shapes of y and z for a padded image of height x width pixels."""
        return (1, self.spec["M"], height // 16, width // 16), (1, self.spec["N"], height // 64, width // 64)

    def y_units(self, shape: tuple) -> list:
        return self.exact.y_units(tuple(shape))

    def run(self, graph: str, x: np.ndarray) -> np.ndarray:
        """A graph's float32 output (graph: "g_s", "g_a" or "h_a") for an input."""
        return self._sessions[graph].run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]

    @cached_property
    def _sessions(self) -> "_Sessions":
        return _Sessions(self.stem)

    def g_s(self, y_hat: np.ndarray) -> np.ndarray:
        """8-bit pixels (uint8, (1, 3, 16h, 16w)) of a y_hat tile (float32, (1, M, h, w)): the
        same rounding as the torch decoder's ``to_pixels``."""
        return np.rint(np.clip(self.run("g_s", y_hat), 0, 1) * 255).astype(np.uint8)

    def g_a(self, pixels: np.ndarray) -> np.ndarray:
        """y (float32) of an image tile ((1, 3, H, W), H and W multiples of 16): 8-bit pixels,
        scaled to [0, 1] as the torch encoder scales them, or floats in [0, 1]."""
        return self.run("g_a", pixels.astype(np.float32) / np.float32(255) if pixels.dtype == np.uint8 else pixels)

    def h_a(self, y: np.ndarray) -> np.ndarray:
        """z (float32) of y: the family's hyper-analysis (of |y| for the scale model)."""
        return self.run("h_a", y)


class _Sessions:
    """The onnxruntime session of each graph of an export, made on first use."""

    def __init__(self, stem: Path):
        self.stem, self.made, self.lock = stem, {}, threading.Lock()

    def __getitem__(self, graph: str):
        with self.lock:
            if graph not in self.made:
                self.made[graph] = self._open(self.stem.with_name(f"{self.stem.name}.{graph}.onnx"))
            return self.made[graph]

    @staticmethod
    def _open(path: Path):
        try:
            import onnxruntime
        except ImportError:
            raise LrcodecError("coding without torch needs onnxruntime: pip install onnxruntime") from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's
        options.intra_op_num_threads = int(os.environ.get("LRCODEC_THREADS", "0"))  # 0: one per core
        try:
            return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own error types: a missing or damaged graph
            raise LrcodecError(f"{path}: not a usable graph ({str(e).splitlines()[0][:200]}); export it again") from None


def _weights(spec: dict, path: Path) -> dict:
    """The float tensors the exact path reads (as stored: fp16 or fp32) from the export's
    weights file, checked against the digest the export was made from, so that replaced weights
    cannot decode wrongly."""
    from safetensors import safe_open

    if not path.is_file():
        raise LrcodecError(f"the weights of runtime export {spec['name']} are missing: {path}")
    if file_digest(path) != spec["weights_sha256"]:
        raise LrcodecError(f"{path} is not the file runtime export {spec['name']} was made from; export it again")
    names = [n for layer in spec["h_s"] if layer["kind"] != "shuffle" for n in (f"{layer['name']}.weight", f"{layer['name']}.bias")]
    names += [n for layer in spec["prior"]["layers"] for n in layer if n] + [spec["prior"]["quantiles"]]
    with safe_open(str(path), framework="numpy") as f:
        return {n: f.get_tensor(n) for n in names}


_SPEC_KEYS = ("name", "arch", "model_id", "N", "M", "sigma_min", "mean_scale", "g_a_halo", "g_s_halo",
              "weights_sha256", "h_s", "prior", "card")
_LOADED: dict[tuple, RuntimeModel] = {}
_LOCK = threading.Lock()


def load_runtime(path: Path) -> RuntimeModel:
    """The runtime model of an export (``<stem>.runtime.json``, its weights ``<stem>.safetensors``);
    kept once loaded, keyed by the files' paths and modification times."""
    path = Path(path)
    weights = path.with_name(path.name[: -len(SPEC)] + ".safetensors")
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns, weights.stat().st_mtime_ns if weights.exists() else 0)
    except OSError:
        raise LrcodecError(f"runtime export not found: {path}") from None
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
    try:
        spec = json.loads(path.read_text())
        if not isinstance(spec, dict) or spec.get("export_version") != EXPORT_VERSION:
            raise LrcodecError(f"{path}: not a runtime export of this lrcodec version; export it again")
        missing = [k for k in _SPEC_KEYS if k not in spec]
        if missing:
            raise LrcodecError(f"{path}: not a valid runtime export (no {', '.join(missing)})")
        tensors = _weights(spec, weights)
        prior = spec["prior"]
        parts = (FactorizedPrior.of_layers([[tensors[n] if n else None for n in layer] for layer in prior["layers"]],
                                           tensors[prior["quantiles"]]),
                 IntegerNetwork.of_spec(spec["h_s"], tensors))
        exact = ExactHyperprior(parts, sigma_table(float(spec["sigma_min"])), bool(spec["mean_scale"]))
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as e:
        raise LrcodecError(f"{path}: not a valid runtime export ({type(e).__name__}: {e})") from None
    model = RuntimeModel(spec, exact, path.with_name(path.name[: -len(SPEC)]))
    with _LOCK:
        _LOADED[key] = model
    return model


def shipped_runtime(card: dict) -> RuntimeModel | None:
    """The runtime model of a shipped model, None where it has no export."""
    path = models_dir() / f"{card['name']}{SPEC}"
    return load_runtime(path) if path.is_file() else None


def find_runtime_by_id(model_id: bytes) -> RuntimeModel | None:
    """The runtime model of the shipped model (current or retired) whose id this is, None where
    that model has no export or no shipped model has the id."""
    for card in shipped_models(current_only=False):
        if card.get("model_id") == model_id.hex():
            model = shipped_runtime(card)
            if model is not None and model.model_id == model_id:
                return model
    return None


def runtime_for(name: str | None = None, quality: int | None = None, quiet: bool = False) -> RuntimeModel | None:
    """The runtime model that ``--model NAME|PATH`` and ``--quality`` name, as ``load_model``
    resolves them: a shipped model's export, or a checkpoint's (exported to the cache on first
    use); None where only torch runs it (a zoo name, a rate level of a variable-rate network, an
    architecture without an export)."""
    if name in ZOO:
        return None
    if name and (os.sep in name or Path(name).suffix or Path(name).exists()):
        path = Path(name)
        if not path.is_file():
            raise LrcodecError(f"model file not found: {name}")
        if quality is not None:  # a variable-rate network's level: no export has levels
            return None
        spec = export_checkpoint(path, quiet)
        return None if spec is None else load_runtime(spec)
    return shipped_runtime(shipped_card(name, quality))
