"""mergan_tf: a TensorFlow 2 / Keras 3 port of Memory Replay GANs (Wu et al., NeurIPS 2018)."""

__version__ = "0.1.0"
