"""The training loop: one process, or several under ``torchrun`` (DistributedDataParallel).

A run writes into its output folder::

    config.json        the resolved settings and their hash
    history.jsonl      one line per epoch: losses, learning rate, img/s, evaluation
    model.safetensors  the best checkpoint so far (by mAP; the latest when nothing is evaluated) + model.json
    state/last.pt      model, optimiser and progress after the last finished epoch (for --resume)

Every epoch starts from RNG states derived from the seed and the epoch number, so a run resumed from
``state/last.pt`` computes exactly what the uninterrupted run would have (on the same machine).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from reid.checkpoints import Manifest, load_checkpoint, read_manifest
from reid.datasets import ImageRecord, MarketDataset
from reid.engine import EngineOptions, Extractor
from reid.errors import CheckpointError, ConfigError
from reid.evaluation.runner import evaluate_market, extractor_embedder
from reid.models import ReIDModel, reid_config
from reid.preprocess import PreprocessConfig
from reid.training.checkpoint import load_state, save_servable, save_state, servable
from reid.training.config import TrainConfig
from reid.training.data import Augment, TrainingCrops, identity_labels
from reid.training.losses import batch_hard_triplet_loss
from reid.training.sampler import PKSampler

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "model.safetensors"
STATE_FILE = Path("state") / "last.pt"


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    manifest: Manifest
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best_map(self) -> float | None:
        scores = [entry["eval"]["mAP"] for entry in self.history if entry.get("eval")]
        return max(scores) if scores else None


class _WithLogits(nn.Module):
    """The model as training sees it: the pre-BN feature (triplet loss) and the post-BN logits (identity
    loss). One module, so DistributedDataParallel syncs every gradient of one forward."""

    def __init__(self, model: ReIDModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        head = self.model.head
        feature = head.pool(self.model.backbone.forward_features(x)).flatten(1)
        assert head.bnneck is not None  # _build_model makes a BNNeck head with a classifier
        assert head.classifier is not None
        return feature, head.classifier(head.bnneck(feature))


@dataclass(frozen=True)
class _Processes:
    """This process's place in a ``torchrun`` job (a single process: rank 0 of 1)."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _processes(config: TrainConfig) -> _Processes:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if config.device == "auto":
        cuda = torch.cuda.is_available()
    else:
        cuda = torch.device(config.device).type == "cuda"
    if world == 1:
        device = (
            torch.device("cuda" if cuda else "cpu")
            if config.device == "auto"
            else torch.device(config.device)
        )
        return _Processes(device=device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return _Processes(rank=dist.get_rank(), world=dist.get_world_size(), device=device)


def _autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Mixed precision on GPU (bf16, fp16 where the GPU lacks bf16); fp32 on CPU unless asked."""
    if config.dtype == "fp32" or (config.dtype == "auto" and device.type != "cuda"):
        return None
    if config.dtype == "fp16":
        if device.type != "cuda":
            raise ConfigError("fp16 training needs a GPU; use bf16 or fp32 on CPU")
        return torch.float16
    if config.dtype == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate of (0-based) ``epoch``: linear warm-up from ``warmup_factor × lr``, then step
    decay at the milestones or a cosine to zero."""
    if epoch < config.warmup_epochs:
        warm = config.warmup_factor + (1 - config.warmup_factor) * epoch / config.warmup_epochs
        return config.lr * warm
    if config.schedule == "step":
        return config.lr * config.gamma ** bisect.bisect_right(config.milestones, epoch)
    span = max(config.epochs - config.warmup_epochs, 1)
    return config.lr * 0.5 * (1 + math.cos(math.pi * (epoch - config.warmup_epochs) / span))


def _seed(config: TrainConfig, epoch: int) -> int:
    return config.seed * 1_000_003 + epoch


def _build_model(config: TrainConfig, num_classes: int) -> tuple[ReIDModel, PreprocessConfig]:
    torch.manual_seed(config.seed)
    model = ReIDModel(reid_config(config.backbone, last_stride=config.last_stride, num_classes=num_classes))
    nn.init.normal_(model.head.classifier.weight, std=0.001)  # type: ignore[union-attr]  # BoT's init
    preprocess = PreprocessConfig.torchvision(height=config.height, width=config.width)
    if config.weights is None:
        return model, preprocess
    loaded = load_checkpoint(config.weights)
    try:
        model.backbone.load_state_dict(loaded.model.backbone.state_dict(), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"initial weights {config.weights} ({loaded.config.backbone_name}) do not fit the "
            f"{config.backbone} backbone: {str(exc).splitlines()[0]}"
        ) from None
    # Keep the normalisation the backbone learnt with; the input size is the run's.
    return model, PreprocessConfig(
        height=config.height,
        width=config.width,
        mean=loaded.preprocess.mean,
        std=loaded.preprocess.std,
        pixel_range=loaded.preprocess.pixel_range,
        interpolation=loaded.preprocess.interpolation,
    )


def _gather(features: torch.Tensor, labels: torch.Tensor, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every process's features and labels, so triplets are mined over the global batch as one process
    would; only this process's slice carries gradient."""
    if world == 1:
        return features, labels
    feats = [torch.empty_like(features) for _ in range(world)]
    labs = [torch.empty_like(labels) for _ in range(world)]
    dist.all_gather(feats, features.detach())
    dist.all_gather(labs, labels)
    feats[dist.get_rank()] = features
    return torch.cat(feats), torch.cat(labs)


def _evaluate(
    model: ReIDModel, preprocess: PreprocessConfig, dataset: MarketDataset, device: torch.device
) -> dict[str, float]:
    served, fingerprint = servable(model, preprocess)
    options = EngineOptions(device=str(device), dtype="fp32", max_batch_size=64)
    extractor = Extractor(served, preprocess, fingerprint=fingerprint, options=options)
    try:
        result = evaluate_market(dataset, extractor_embedder(extractor, progress=False))
    finally:
        extractor.close()
    metrics = result.metrics
    ranks = {f"rank{k}": metrics.rank(k) for k in (1, 5, 10) if k <= len(metrics.cmc)}
    return {"mAP": float(metrics.mAP), **ranks, "mINP": float(metrics.mINP)}


def _loader(crops: TrainingCrops, sampler: PKSampler, config: TrainConfig, epoch: int) -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(_seed(config, epoch))  # workers' seeds come from it
    return DataLoader(
        crops,
        batch_sampler=sampler,
        num_workers=config.workers,
        generator=generator,
        persistent_workers=False,
        pin_memory=False,
    )


@contextlib.contextmanager
def _progress(enabled: bool, total: int, epoch: int, epochs: int) -> Iterator[tqdm[Any]]:
    bar = tqdm(
        total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", disable=None if enabled else True
    )
    try:
        yield bar
    finally:
        bar.close()


def train(
    config: TrainConfig,
    records: Sequence[ImageRecord],
    out_dir: str | Path,
    *,
    evaluation: MarketDataset | None = None,
    resume: bool = False,
    stop_after: int | None = None,
) -> TrainResult:
    """Train on ``records`` (every one labelled with a person id) into ``out_dir``.

    ``evaluation``: a Market-style query/gallery split scored every ``config.eval_every`` epochs and at the
    end; the best mAP's weights are kept. ``resume`` continues from ``out_dir/state/last.pt`` (same
    settings required). ``stop_after`` ends after that many epochs in total, as an interruption would:
    the run stays resumable.
    """
    out = Path(out_dir)
    procs = _processes(config)
    labels, persons = identity_labels(records)
    model, preprocess = _build_model(config, num_classes=len(persons))
    model.to(procs.device)
    if procs.device.type == "cuda" and config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(config, model)
    autocast = _autocast_dtype(config, procs.device)
    scaler = torch.amp.GradScaler(enabled=autocast == torch.float16)
    history: list[dict[str, Any]] = []
    best = -1.0
    start = 0
    if resume:
        start, best, history = _restore(out / STATE_FILE, config, model, optimizer, scaler)
    elif procs.main and (out / STATE_FILE).exists():
        raise ConfigError(
            f"{out} holds a training run already; pass --resume to continue it or choose a new folder"
        )
    if procs.main:
        out.mkdir(parents=True, exist_ok=True)
        record = {"config": config.to_dict(), "config_hash": config.digest(), "identities": len(persons)}
        (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    wrapped: nn.Module = _WithLogits(model)
    if procs.world > 1:
        if procs.device.type == "cuda":
            wrapped = nn.SyncBatchNorm.convert_sync_batchnorm(wrapped)
        wrapped = DistributedDataParallel(
            wrapped, device_ids=[procs.device] if procs.device.type == "cuda" else None
        )
    identities = config.batch_size // config.instances
    sampler = PKSampler(
        labels,
        identities=identities,
        instances=config.instances,
        seed=config.seed,
        num_replicas=procs.world,
        rank=procs.rank,
    )
    augment = Augment(flip_prob=config.flip_prob, pad=config.pad, erasing_prob=config.erasing_prob)
    crops = TrainingCrops(records, labels, preprocess, augment)
    end = config.epochs if stop_after is None else min(stop_after, config.epochs)
    manifest: Manifest | None = None
    for epoch in range(start, end):
        entry = _train_epoch(config, epoch, wrapped, optimizer, scaler, autocast, crops, sampler, procs)
        last = epoch + 1 == config.epochs
        due = evaluation is not None and (
            last or (config.eval_every and (epoch + 1) % config.eval_every == 0)
        )
        if procs.main:
            if due:
                assert evaluation is not None
                entry["eval"] = _evaluate(model, preprocess, evaluation, procs.device)
                logger.info(
                    "epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in entry["eval"].items())
                )
            history.append(entry)
            # Keep the best evaluated weights; without an evaluation split, the latest.
            keep = entry["eval"]["mAP"] > best if due else evaluation is None
            if keep:
                best = entry["eval"]["mAP"] if due else best
                record = _training_record(config, epoch, entry, persons)
                manifest = save_servable(model, preprocess, out / CHECKPOINT_NAME, record)
            with (out / "history.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
            save_state(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch + 1,
                    "best": best,
                    "config_hash": config.digest(),
                    "history": history,
                },
                out / STATE_FILE,
            )
        if procs.world > 1:
            dist.barrier()
    if manifest is None:
        manifest = _read_kept(out / CHECKPOINT_NAME)
    return TrainResult(checkpoint=out / CHECKPOINT_NAME, manifest=manifest, history=history)


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _train_epoch(
    config: TrainConfig,
    epoch: int,
    wrapped: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    autocast: torch.dtype | None,
    crops: TrainingCrops,
    sampler: PKSampler,
    procs: _Processes,
) -> dict[str, Any]:
    torch.manual_seed(_seed(config, epoch))
    sampler.set_epoch(epoch)
    lr = learning_rate(config, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    wrapped.train()
    totals = {"loss": 0.0, "id_loss": 0.0, "triplet_loss": 0.0}
    images_seen, steps, started = 0, 0, time.perf_counter()
    with _progress(procs.main, len(sampler), epoch, config.epochs) as bar:
        for images, labels in _loader(crops, sampler, config, epoch):
            images = images.to(procs.device, non_blocking=True)
            labels = labels.to(procs.device, non_blocking=True)
            if procs.device.type == "cuda" and config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                procs.device.type, dtype=autocast or torch.float32, enabled=autocast is not None
            ):
                features, logits = wrapped(images)
            id_loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
            all_features, all_labels = _gather(features.float(), labels, procs.world)
            # Each process holds the whole batch's triplet loss but only its slice's gradient: scaled by
            # the world size, DDP's gradient average comes out as the single-process gradient.
            triplet = batch_hard_triplet_loss(all_features, all_labels, config.triplet_margin) * procs.world
            loss = config.id_weight * id_loss + config.triplet_weight * triplet
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            steps += 1
            images_seen += len(images) * procs.world
            totals["loss"] += loss.item()
            totals["id_loss"] += id_loss.item()
            totals["triplet_loss"] += triplet.item() / procs.world
            rate = images_seen / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{rate:.0f}")
            bar.update()
    if steps == 0:
        raise ConfigError(
            "an epoch produced no batch: the training set has too few identities for batch_size"
        )
    seconds = time.perf_counter() - started
    return {
        "epoch": epoch + 1,
        "lr": lr,
        **{name: value / steps for name, value in totals.items()},
        "images_per_second": images_seen / seconds,
    }


def _training_record(
    config: TrainConfig, epoch: int, entry: dict[str, Any], persons: dict[int, int]
) -> dict[str, Any]:
    return {
        "config": config.to_dict(),
        "config_hash": config.digest(),
        "epochs_done": epoch + 1,
        "identities": len(persons),
        "evaluation": entry.get("eval"),
    }


def _restore(
    path: Path,
    config: TrainConfig,
    model: ReIDModel,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> tuple[int, float, list[dict[str, Any]]]:
    state = load_state(path)
    if state.get("config_hash") != config.digest():
        raise ConfigError(
            f"{path} was written with other training settings (hash {state.get('config_hash')}, now "
            f"{config.digest()}); resume with the settings in config.json beside it"
        )
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    logger.info("resuming %s after epoch %d", path.parent.parent, state["epoch"])
    return int(state["epoch"]), float(state["best"]), list(state["history"])


def _read_kept(path: Path) -> Manifest:
    manifest = read_manifest(path)
    if manifest is None:
        raise CheckpointError(f"{path} has no manifest: the run did not finish an epoch")
    return manifest
