"""Fine-tuning on labelled crops: the "bag of tricks" baseline (Luo et al. 2019) as ``reid train`` runs it.

A P×K identity sampler feeds batches of P people × K crops; the loss is identity cross-entropy with label
smoothing on the BNNeck's post-BN logits plus a batch-hard triplet loss on the pre-BN feature; the
learning rate warms up linearly, then decays by steps or a cosine. The result is a safetensors checkpoint
with its manifest, which every other command loads as it is.
"""

from reid.training.config import PRESETS, TrainConfig, load_config
from reid.training.losses import batch_hard_triplet_loss
from reid.training.sampler import PKSampler
from reid.training.trainer import TrainResult, train

__all__ = [
    "PRESETS",
    "PKSampler",
    "TrainConfig",
    "TrainResult",
    "batch_hard_triplet_loss",
    "load_config",
    "train",
]
