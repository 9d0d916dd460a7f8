"""lrcodec: a learned image codec with hyperprior models, range coding and latent refinement.

The library is usable from Python (``lrcodec.codec.encode_image`` / ``decode_image``,
``lrcodec.learn.refine.refine_image``); the ``lrcodec`` command is a thin layer over it.
Heavy imports (torch, constriction) happen inside the modules that need them, so importing
this package and running ``lrcodec --help`` stay fast. CompressAI is not imported when
lrcodec codes: its networks are lrcodec's own (``lrcodec.families``), with CompressAI's
tensor names; CompressAI is the tests' and benchmarks' reference.
"""

__version__ = "0.2.0"
# The version of every JSON output (models, info, eval, --summary; docs/json.md): raised only
# when a key changes meaning or goes away, never when one is added.
JSON_SCHEMA_VERSION = 1
