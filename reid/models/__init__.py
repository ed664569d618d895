"""The ResNet family of the design notes (variants are data) and the re-ID model built on it."""

from reid.models.config import ReIDConfig, ResNetConfig
from reid.models.registry import create_model, get_config, list_models
from reid.models.reid_model import DEFAULT_BACKBONE, ReIDModel, create_reid_model, reid_config
from reid.models.resnet import FeatureInfo, ResNet

__all__ = [
    "DEFAULT_BACKBONE",
    "FeatureInfo",
    "ReIDConfig",
    "ReIDModel",
    "ResNet",
    "ResNetConfig",
    "create_model",
    "create_reid_model",
    "get_config",
    "list_models",
    "reid_config",
]
