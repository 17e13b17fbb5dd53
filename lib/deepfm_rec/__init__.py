"""deepfm-rec: FM and DeepFM rating models on MovieLens, as a reproducible study."""

__version__ = "0.1.0"
