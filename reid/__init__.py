"""reid: person re-identification embeddings and gallery search."""

from reid.models import ResNetConfig, create_model, list_models

__all__ = ["ResNetConfig", "create_model", "list_models"]
__version__ = "0.1.0"
