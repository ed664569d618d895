"""`reid embed` against fast-reid's own inference path, side by side on this host (issue 13's CPU target).

Same checkpoint (fast-reid's BoT R50-ibn, ``configs/Market1501/bagtricks_R50-ibn.yml``), same JPEGs; every
measurement is a fresh process timed on the wall clock (process start, imports, weight loading, decoding
and writing the features all count), repeated ``--repeats`` times with the variants interleaved, so a
noisy neighbour on a shared host hits every variant alike. Variants:

* ``fast-reid demo``: fast-reid's ``demo/demo.py`` itself (``FeatureExtractionDemo`` → ``DefaultPredictor``,
  cv2 decode, BGR→RGB, bicubic resize to 256×128, one image per forward as the demo does), on the CPU;
* ``fast-reid batched``: the same config and ``DefaultPredictor`` fed as its evaluation loader feeds the model
  (PIL decode, its test transforms: bicubic PIL resize), ``--batch-size`` images per forward;
* ``reid torch fp32``: ``reid embed`` on the fast-reid checkpoint (eager fp32, the engine's defaults);
* ``reid openvino bf16``: ``reid embed`` on the ``reid export --format openvino`` artifact (bf16 where the
  CPU has it natively: the README's runtime for such CPUs; exported once, outside the timed region).

fast-reid runs in its own virtual environment (``--fastreid-python``); this file is also its runner: the
``_fastreid-*`` commands run there, import nothing from reid and apply the compatibility shims an old
fast-reid needs on a current Python/PyTorch at run time (the fetched tree is never edited).

Without weights from the model zoo (no network), ``--make-checkpoint`` builds fast-reid's model from the
config (random init), damps the residual branches and calibrates BatchNorm on the crops so that
different images get different embeddings, and saves it with fast-reid's ``Checkpointer``.

    python benchmarks/fastreid_compare.py --fastreid /work/fastreid-src \\
        --fastreid-python /work/fastreid-venv/bin/python --synthetic 256 --work /tmp/frc --make-checkpoint
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import importlib
import json
import logging
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hostinfo import cpu_description, spread

logger = logging.getLogger("fastreid_compare")

CONFIG = "configs/Market1501/bagtricks_R50-ibn.yml"
REPO = Path(__file__).resolve().parent.parent
PROBE_IMAGES = 16


# --- fast-reid side (runs in fast-reid's virtual environment; no reid imports) ---------------------------


def _fastreid_shims(root: Path) -> None:
    """What fast-reid's code (written for Python ≤ 3.9) needs here: ``collections.Mapping``, removed in
    Python 3.10 (it lives in ``collections.abc``), is imported by ``fastreid/data/build.py`` and
    ``fastreid/evaluation/testing.py``, which ``fastreid.engine`` pulls in. The only shim needed with
    torch 2.14 / numpy 2 on the paths used here."""
    if not hasattr(collections, "Mapping"):
        collections.Mapping = collections.abc.Mapping  # type: ignore[attr-defined]
    sys.path.insert(0, str(root))


def _fastreid_cfg(root: Path, opts: Sequence[str]) -> Any:
    get_cfg = importlib.import_module("fastreid.config").get_cfg
    cfg = get_cfg()
    cfg.merge_from_file(str(root / CONFIG))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
    return cfg


def _fastreid_preprocess(path: Path, size_test: Sequence[int]) -> np.ndarray:
    """fast-reid's demo preprocessing (FeatureExtractionDemo.run_on_image): BGR→RGB, bicubic cv2 resize."""
    cv2 = importlib.import_module("cv2")
    image = cv2.imread(str(path))[:, :, ::-1]
    resized: np.ndarray = cv2.resize(image, tuple(size_test[::-1]), interpolation=cv2.INTER_CUBIC)
    return resized.transpose(2, 0, 1)


def fastreid_make_checkpoint(args: argparse.Namespace) -> int:
    """Random-init BoT R50-ibn, trained-like: damped residual branches, BatchNorm calibrated on the crops."""
    _fastreid_shims(args.fastreid)
    torch = importlib.import_module("torch")
    build_model = importlib.import_module("fastreid.modeling.meta_arch").build_model
    checkpointer = importlib.import_module("fastreid.utils.checkpoint").Checkpointer
    predictor = importlib.import_module("fastreid.engine").DefaultPredictor

    torch.manual_seed(args.seed)
    cfg = _fastreid_cfg(args.fastreid, ["MODEL.BACKBONE.PRETRAIN", "False"])
    model = build_model(cfg)
    images = sorted(args.images.glob("*.jpg"))
    pixels = np.stack([_fastreid_preprocess(p, cfg.INPUT.SIZE_TEST) for p in images[: args.calibration]])
    with torch.no_grad():
        for module in model.modules():
            # A random deep ResNet with unit gammas on its last residual norm is chaotic (any rounding changes
            # the embedding); training shrinks them. Same rule as reid's tests/helpers.py: damp_residuals.
            if hasattr(module, "conv3") and hasattr(module, "downsample"):
                module.bn3.weight.fill_(args.damp)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        model.eval()  # the Baseline wants targets in train mode: only the norms collect statistics
        for bn in bns:
            bn.train()
        for start in range(0, len(pixels), 32):
            model({"images": torch.as_tensor(pixels[start : start + 32]).float()})
        model.eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    checkpointer(model, save_dir=str(args.out.parent)).save(args.out.stem)
    logger.info("wrote %s (calibrated on %d crops)", args.out, len(pixels))

    # fast-reid's own load path (DefaultPredictor → Checkpointer.load) on a few preprocessed crops: reid
    # embeds the same pixels to check the weights map exactly, apart from decoding and resizing.
    loaded = predictor(_fastreid_cfg(args.fastreid, ["MODEL.WEIGHTS", str(args.out)]))
    probe = pixels[:PROBE_IMAGES]
    features = loaded(torch.as_tensor(probe).float())
    features = torch.nn.functional.normalize(features).numpy()
    np.savez(args.out.with_suffix(".probe.npz"), pixels=probe, features=features)
    return 0


def fastreid_demo(args: argparse.Namespace) -> int:
    """fast-reid's demo/demo.py as it is, given every crop of the folder and the checkpoint on the CPU."""
    _fastreid_shims(args.fastreid)
    demo = args.fastreid / "demo"
    sys.path.insert(0, str(demo))  # demo.py imports its sibling predictor.py
    os.chdir(args.fastreid)
    images = [str(p) for p in sorted(args.images.glob("*.jpg"))]
    sys.argv = [
        str(demo / "demo.py"),
        "--config-file",
        CONFIG,
        "--input",
        *images,
        "--output",
        str(args.out),
        "--opts",
        "MODEL.WEIGHTS",
        str(args.checkpoint),
        "MODEL.DEVICE",
        "cpu",
    ]
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


def fastreid_batched(args: argparse.Namespace) -> int:
    """What fast-reid's evaluation loader feeds the model: ``read_image`` (PIL) and its test transforms
    (``build_transforms(cfg, is_train=False)``: bicubic PIL resize, 0–255), ``--batch-size`` images per
    ``DefaultPredictor`` call, L2-normalised like the demo's output."""
    _fastreid_shims(args.fastreid)
    torch = importlib.import_module("torch")
    predictor_cls = importlib.import_module("fastreid.engine").DefaultPredictor
    build_transforms = importlib.import_module("fastreid.data.transforms").build_transforms
    read_image = importlib.import_module("fastreid.data.data_utils").read_image
    cfg = _fastreid_cfg(args.fastreid, ["MODEL.WEIGHTS", str(args.checkpoint)])
    cfg.freeze()
    predictor = predictor_cls(cfg)
    transforms = build_transforms(cfg, is_train=False)
    images = sorted(args.images.glob("*.jpg"))
    rows = []
    for start in range(0, len(images), args.batch_size):
        batch = torch.stack([transforms(read_image(str(p))) for p in images[start : start + args.batch_size]])
        rows.append(torch.nn.functional.normalize(predictor(batch)).numpy())
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "features.npy", np.concatenate(rows))
    (args.out / "features.json").write_text(json.dumps([p.name for p in images]))
    return 0


# --- benchmark side (runs in reid's virtual environment) -------------------------------------------------


@dataclass
class Variant:
    name: str
    command: list[str]
    out: Path


def synthesize(folder: Path, count: int, height: int, width: int) -> None:
    """``count`` Market-style crops from reid's synthetic generator, flattened into one folder."""
    from reid.datasets import make_synthetic_market

    cameras, per_camera = 6, 4
    ids = -(-count // (cameras * (per_camera + 1)))  # each identity: per_camera gallery + 1 query per camera
    root = folder.parent / f"{folder.name}-market"
    shutil.rmtree(root, ignore_errors=True)
    data = make_synthetic_market(
        root,
        num_ids=ids,
        num_train_ids=0,
        num_cameras=cameras,
        images_per_id_per_camera=per_camera,
        height=height,
        width=width,
    )
    records = sorted([*data.query, *data.gallery], key=lambda r: r.key)[:count]
    folder.mkdir(parents=True)
    for record in records:
        shutil.copyfile(record.path, folder / record.key.replace("/", "-"))
    shutil.rmtree(root)


def run_timed(command: Sequence[str], log: Path) -> float:
    """Wall-clock seconds of one fresh process; its output goes to ``log``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("w") as sink:
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=sink, stderr=subprocess.STDOUT, env=env)
        return time.perf_counter() - started


def read_features(out: Path, names: Sequence[str]) -> np.ndarray:
    """Unit feature rows in ``names`` order from any variant's output."""
    if out.is_dir() and (out / "features.npy").exists():  # fast-reid batched
        order = json.loads((out / "features.json").read_text())
        table = dict(zip(order, np.load(out / "features.npy"), strict=True))
    elif out.is_dir():  # fast-reid's demo: one (1, dim) .npy per image, named after it
        table = {n: np.load(out / f"{Path(n).stem}.npy")[0] for n in names}
    else:  # reid embed: (N, dim) .npy and its row order
        keys = json.loads(out.with_suffix(".json").read_text())["keys"]
        table = dict(zip((Path(k).name for k in keys), np.load(out), strict=True))
    rows = np.stack([table[n] for n in names]).astype(np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Cosine per image, and the distance per image relative to the reference's inter-image distance."""
    from reid.export.verify import median_distance

    scale = median_distance(reference)
    distance = np.linalg.norm(reference - other, axis=1)
    return {
        "min_cosine": float((reference * other).sum(1).min()),
        "max_rel_error": float(distance.max() / scale),
        "median_rel_error": float(np.median(distance) / scale),
        "inter_image_cosine": float(1 - scale**2 / 2),
    }


def model_only_agreement(checkpoint: Path) -> dict[str, float]:
    """reid's model on fast-reid's own preprocessed pixels against fast-reid's features for them."""
    import torch

    from reid.checkpoints import load_checkpoint
    from reid.preprocess import normalize

    probe = np.load(checkpoint.with_suffix(".probe.npz"))
    loaded = load_checkpoint(checkpoint)
    with torch.no_grad():
        x = normalize(torch.from_numpy(probe["pixels"].copy()), loaded.preprocess)
        ours = torch.nn.functional.normalize(loaded.model(x)).double().numpy()
    return agreement(probe["features"].astype(np.float64), ours)


def export_openvino(checkpoint: Path, images: Path, out: Path) -> Path:
    """``reid export --format openvino`` once (bf16 where native), verified on the benchmark crops."""
    artifact = out / "model.xml"
    if not artifact.exists():
        command = [sys.executable, "-m", "reid", "export", str(checkpoint), "--format", "openvino"]
        command += ["--out", str(artifact), "--samples", str(images)]
        seconds = run_timed(command, out.parent / "export.log")
        logger.info("exported %s in %.0f s", artifact, seconds)
    manifest = json.loads(artifact.with_suffix(".xml.json").read_text())
    logger.info("artifact: %s, verification %s", manifest["dtype"], manifest["verification"])
    return artifact


def variants(
    args: argparse.Namespace, checkpoint: Path, artifact: Path, precision: str, rep: int
) -> list[Variant]:
    work: Path = args.work
    fastreid = [str(args.fastreid_python), __file__]
    shared = ["--fastreid", str(args.fastreid), "--images", str(args.images), "--checkpoint", str(checkpoint)]
    embed = [sys.executable, "-m", "reid", "embed", str(args.images), "--device", "cpu"]
    embed += ["--batch-size", str(args.batch_size)]
    out = {
        name: work / "out" / f"{name}-{rep}" for name in ("fr-demo", "fr-batched", "reid-torch", "reid-ov")
    }
    found = [
        Variant("fast-reid demo (batch 1)", [*fastreid, "_fastreid-demo", *shared], out["fr-demo"]),
        Variant(
            f"fast-reid batched (batch {args.batch_size})",
            [*fastreid, "_fastreid-batched", *shared, "--batch-size", str(args.batch_size)],
            out["fr-batched"],
        ),
        Variant(
            "reid torch fp32",
            [*embed, "--weights", str(checkpoint), "--runtime", "torch", "--dtype", "fp32"],
            out["reid-torch"].with_suffix(".npy"),
        ),
        Variant(
            f"reid openvino {precision}",
            [*embed, "--weights", str(artifact)],
            out["reid-ov"].with_suffix(".npy"),
        ),
    ]
    for variant in found:
        variant.command += ["--out", str(variant.out)]
    return found


def benchmark(args: argparse.Namespace) -> int:
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.images is None:
        args.images = work / "images"
        if not args.images.exists():
            synthesize(args.images, args.synthetic, args.height, args.width)
    names = [p.name for p in sorted(args.images.glob("*.jpg"))]
    if not names:
        raise SystemExit(f"no .jpg files in {args.images}")
    checkpoint: Path = args.checkpoint or work / "fastreid_bot_r50_ibn.pth"
    if args.make_checkpoint or not checkpoint.exists():
        command = [str(args.fastreid_python), __file__, "_fastreid-make-checkpoint", "--fastreid"]
        command += [str(args.fastreid), "--images", str(args.images), "--out", str(checkpoint)]
        run_timed(command, work / "make-checkpoint.log")
    model_only = model_only_agreement(checkpoint)
    logger.info("model only (same pixels), reid vs fast-reid: %s", model_only)
    artifact = export_openvino(checkpoint, args.images, work / "openvino")
    precision = json.loads(artifact.with_suffix(".xml.json").read_text())["dtype"]

    cpu = cpu_description()
    seconds: dict[str, list[float]] = {}
    outputs: dict[str, Path] = {}
    loads = [os.getloadavg()[0]]
    for rep in range(args.repeats):
        for variant in variants(args, checkpoint, artifact, precision, rep):
            shutil.rmtree(variant.out, ignore_errors=True)
            log = work / "out" / f"{variant.out.stem}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            took = run_timed(variant.command, log)
            seconds.setdefault(variant.name, []).append(took)
            outputs.setdefault(variant.name, variant.out)
            loads.append(os.getloadavg()[0])
            logger.info("%s, run %d: %.1f s (%.1f img/s)", variant.name, rep + 1, took, len(names) / took)

    throughput = {name: [len(names) / s for s in runs] for name, runs in seconds.items()}
    demo, loader = list(throughput)[:2]
    features = {name: read_features(out, names) for name, out in outputs.items()}
    print(f"\nCPU: {cpu}")
    print(
        f"{len(names)} JPEGs in {args.images}, checkpoint {checkpoint.name}, OpenVINO artifact {precision}, "
        f"batch {args.batch_size}; {args.repeats} interleaved runs each, load average (1 min) "
        f"{min(loads):.1f}–{max(loads):.1f}; median (min–max); ratios paired run by run"
    )
    print(
        f"model only, fast-reid's pixels: reid vs fast-reid min cosine {model_only['min_cosine']:.7f}, "
        f"error {model_only['max_rel_error']:.1e} of the inter-image distance"
    )
    spacing = agreement(features[demo], features[demo])["inter_image_cosine"]
    print(f"median cosine between two different images (fast-reid demo): {spacing:.4f}\n")
    print(
        "| variant | img/s | × fast-reid demo | vs demo (cv2 resize): min cos, error max / median "
        "| vs fast-reid test transforms (PIL resize) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, runs in throughput.items():
        ratios = [r / d for r, d in zip(runs, throughput[demo], strict=True)]
        cells = []
        for reference in (demo, loader):
            agree = agreement(features[reference], features[name])
            cells.append(
                f"{agree['min_cosine']:.4f}, {agree['max_rel_error']:.3g} / {agree['median_rel_error']:.3g}"
            )
        print(f"| {name} | {spread(runs)} | {spread(ratios, 2)} | {cells[0]} | {cells[1]} |")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fastreid", type=Path, required=True, help="a checkout of JDAI-CV/fast-reid")
    parser.add_argument("--images", type=Path, help="folder of .jpg crops (default: synthetic ones)")
    parser.add_argument("--checkpoint", type=Path, help="fast-reid BoT R50-ibn checkpoint (.pth)")
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--batch-size", type=int, default=32, help="per forward for reid and batched fast-reid"
    )
    commands = {
        "_fastreid-make-checkpoint": fastreid_make_checkpoint,
        "_fastreid-demo": fastreid_demo,
        "_fastreid-batched": fastreid_batched,
    }
    parser.add_argument("command", nargs="?", choices=list(commands), help=argparse.SUPPRESS)
    parser.add_argument("--fastreid-python", type=Path, default=Path(sys.executable))
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "fastreid-compare", help="scratch folder"
    )
    parser.add_argument(
        "--synthetic", type=int, default=256, help="synthetic crops when --images is not given"
    )
    parser.add_argument("--height", type=int, default=128, help="synthetic crop height (Market: 128)")
    parser.add_argument("--width", type=int, default=64, help="synthetic crop width (Market: 64)")
    parser.add_argument("--make-checkpoint", action="store_true", help="(re)build the checkpoint")
    parser.add_argument("--calibration", type=int, default=128, help="crops to calibrate BatchNorm on")
    parser.add_argument("--damp", type=float, default=0.2, help="gamma of each residual branch's last BN")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    # Absolute paths: the demo runs from fast-reid's folder (its config paths are relative to it).
    for name in ("fastreid", "images", "checkpoint", "out", "work"):
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).resolve())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command:
        return commands[args.command](args)
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
