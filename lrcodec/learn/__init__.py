"""Learning: per-image latent refinement (SGA+), training with every quantization surrogate
of the literature, and rate-only context training."""
