"""deepfm-rec: FM and DeepFM on MovieLens, trained on star ratings and for top-K ranking,
as a reproducible study."""

__version__ = "0.1.0"
