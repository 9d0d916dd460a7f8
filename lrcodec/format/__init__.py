"""The file format and the exact path: the container, the range coder, the exact arithmetic
that decides every symbol's probability, the latents a file holds, the shared dither, the
float likelihoods the rate is scored with, and tiling. Nothing here knows a model family."""
