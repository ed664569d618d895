"""One exported artifact through every path that embeds: model only, ``reid embed``, ``reid index`` and the
HTTP service, in one run on the same JPEGs (issue 13's CPU target: the service and ``reid index`` should reach
``reid embed``'s throughput with the runtime the README recommends, OpenVINO bf16 on a CPU with native bf16).

Paths, each measured once per round, the order rotating between rounds so that a busy neighbour or a clock
change hits every path alike:

* ``model only``: ``Extractor.embed_batch`` on batches of decoded crops in this process, at
  ``--batch-size`` (the ceiling the ratios use) and at the smaller batches the service may form;
* ``reid embed``: a fresh process on the JPEG folder, timed on the wall clock (process start, imports and
  compiling the artifact included, as README's runtime table) and from its "loaded" log line on (the
  rate once the model is ready);
* ``reid index``: a fresh process indexing the folder into a new FAISS gallery (local engine): wall clock,
  and the rate the job reports (from the gallery opening on);
* ``HTTP /embed``: the service in this process (``load_test.serve``) over the same extractor, driven by
  ``load_client.py`` (its own process) keeping requests in flight (``--clients``: 16x1 is 16 requests of one
  image each, 16x4 is 16 requests of 4 images); img/s after ``--warmup`` seconds of load, the mean batch the
  dynamic batcher formed (``/metrics``), and the CPU milliseconds per image of this process and of the
  client (on a small host the client takes its share of the cores from the service).

Every path also reports its CPU milliseconds per image: unlike img/s, that barely moves when a neighbour
takes cores away, so it tells overhead from contention. Every round's figures go to ``--work``/results.json.

Setup (once, kept in ``--work``): ``--images`` synthetic JPEGs (``reid.export.verify.synthetic_jpegs``); an
SE-IBN-R50 checkpoint with random weights made trained-like (residual branches damped as
``tests/helpers.py`` does, BatchNorm calibrated on the crops); ``reid export --format openvino`` (bf16 where
the CPU has it natively; the export verifies itself against eager fp32 on the same crops).

    python benchmarks/runtime_paths.py --work /tmp/reid-runtime-paths [--rounds 3] [--clients 16x1,64x1,16x4]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import load_test
import numpy as np
import torch
from hostinfo import cpu_description, spread
from load_client import Tally

from reid.bench import calibrate_batchnorm
from reid.checkpoints import write_checkpoint_manifest, write_safetensors
from reid.engine import Extractor
from reid.export.verify import synthetic_jpegs
from reid.models import DEFAULT_BACKBONE, create_reid_model
from reid.preprocess import PreprocessConfig, Preprocessor, normalize

logger = logging.getLogger("runtime_paths")
REPO = Path(__file__).resolve().parent.parent
LOADED = re.compile(r"^(\S+ \S+) INFO reid\.engine: loaded ")
INDEX_RATE = re.compile(r"indexed (\d+),.*?([\d.]+) img/s")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir(), "reid-runtime-paths"))
    p.add_argument("--weights", type=Path, help="an artifact (or checkpoint) to use instead of the setup's")
    p.add_argument("--images", type=int, default=256, help="synthetic JPEGs (default 256)")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32, help="max batch of every path (default 32)")
    p.add_argument(
        "--model-batches",
        default="8,16,32",
        help="model-only batch sizes: the ceiling at each batch the service may form (default 8,16,32)",
    )
    p.add_argument("--max-batch-delay-ms", type=float, default=3.0, help="the service's batcher delay")
    p.add_argument(
        "--clients",
        default="16x1,64x1,16x4",
        help="HTTP loads, one path each: <requests in flight>x<images per request> (default 16x1,64x1,16x4)",
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--model-seconds", type=float, default=6.0, help="model-only seconds per batch size and round"
    )
    p.add_argument("--http-seconds", type=float, default=12.0, help="measured HTTP seconds per round")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each HTTP window")
    return p.parse_args(argv)


# --- setup -------------------------------------------------------------------------------------------


def write_jpegs(folder: Path, count: int, height: int, width: int) -> None:
    folder.mkdir(parents=True)
    for index, data in enumerate(synthetic_jpegs(count, (height, width), seed=3)):
        (folder / f"{index:05d}.jpg").write_bytes(data)


def make_checkpoint(path: Path, images: Path) -> None:
    """SE-IBN-R50 with random weights made trained-like: a random deep ResNet is chaotic, so bf16 rounding
    would change its embeddings completely and the export's verification would fail."""
    sys.path.insert(0, str(REPO))  # tests/ is not installed; its helper is the project's one rule for this
    from tests.helpers import damp_residuals

    preprocess = PreprocessConfig()
    with Preprocessor(preprocess) as decoder:
        crops = decoder.prepare_batch(sorted(images.glob("*.jpg"))[:32])
    torch.manual_seed(0)
    model = create_reid_model(DEFAULT_BACKBONE)
    damp_residuals(model)
    model = calibrate_batchnorm(model, [normalize(crops, preprocess)])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(model.state_dict(), path)
    logger.info("checkpoint %s: %s", path, write_checkpoint_manifest(path, source="reid").fingerprint)


def reid_command(*words: str) -> list[str]:
    return [sys.executable, "-m", "reid", *words]


def setup(args: argparse.Namespace) -> tuple[Path, Path]:
    """(JPEG folder, artifact), made once in ``--work``."""
    work: Path = args.work
    images = work / "jpegs"
    if not images.exists():
        write_jpegs(images, args.images, args.height, args.width)
    if args.weights is not None:
        return images, args.weights
    checkpoint = work / "checkpoint" / "model.safetensors"
    if not checkpoint.exists():
        make_checkpoint(checkpoint, images)
    artifact = work / "openvino" / "model.xml"
    if not artifact.exists():
        logger.info("exporting %s (verified against eager fp32 on the JPEGs)", artifact)
        command = reid_command("export", str(checkpoint), "--format", "openvino", "--out", str(artifact))
        subprocess.run([*command, "--samples", str(images)], check=True)
    manifest = json.loads(artifact.with_suffix(".xml.json").read_text())
    logger.info("artifact %s: %s, verification %s", artifact, manifest["dtype"], manifest["verification"])
    return images, artifact


# --- the paths -----------------------------------------------------------------------------------------


@dataclass
class Rates:
    """One path's rates over the rounds, and what else it reported."""

    name: str
    rates: list[float] = field(default_factory=list)
    notes: dict[str, list[float]] = field(default_factory=dict)

    def note(self, key: str, value: float) -> None:
        self.notes.setdefault(key, []).append(value)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CliRun:
    wall: float  # seconds, process start to exit
    after_load: float  # seconds from the "loaded" log line (model compiled) to exit
    cpu: float  # CPU seconds of the process, all threads
    output: str


def run_cli(command: list[str], log: Path) -> CliRun:
    """Run one fresh process, its output to ``log``."""
    with log.open("w") as sink:
        cpu, started = children_cpu_seconds(), time.perf_counter()
        subprocess.run(command, check=True, stdout=sink, stderr=subprocess.STDOUT)
        ended_wall, ended = time.time(), time.perf_counter()
        cpu = children_cpu_seconds() - cpu
    output = log.read_text()
    loaded = next((m for line in output.splitlines() if (m := LOADED.match(line))), None)
    if loaded is None:
        raise RuntimeError(f"no 'loaded' line in {log}")
    loaded_at = datetime.strptime(loaded.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return CliRun(ended - started, ended_wall - loaded_at, cpu, output)


class Paths:
    """The four paths over one extractor and one running service."""

    def __init__(self, args: argparse.Namespace, images: Path, artifact: Path, extractor: Extractor) -> None:
        self.args = args
        self.images = images
        self.artifact = artifact
        self.extractor = extractor
        self.count = len(list(images.glob("*.jpg")))
        self.batch = load_test.full_batch(extractor, (images / "00000.jpg").read_bytes())
        self.scratch = args.work / "runs"
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        self.model_batches = [int(n) for n in args.model_batches.split(",") if int(n) <= args.batch_size]
        names = [*(f"model only b{n}" for n in self.model_batches), "reid embed", "reid index"]
        self.results = {name: Rates(name) for name in names}
        self.loads = [parse_load(spec) for spec in args.clients.split(",")]
        self.clients: dict[tuple[int, int], subprocess.Popen[str]] = {}
        self.rounds_done = 0

    def engine_flags(self) -> list[str]:
        return ["--weights", str(self.artifact), "--batch-size", str(self.args.batch_size)]

    def model_only(self) -> None:
        for size in self.model_batches:
            cpu = time.process_time()
            images, seconds = load_test.model_only(self.extractor, self.batch[:size], self.args.model_seconds)
            result = self.results[f"model only b{size}"]
            result.rates.append(images / seconds)
            result.note("CPU ms/img", 1000 * (time.process_time() - cpu) / images)

    def embed(self) -> None:
        out = self.scratch / f"embed-{self.rounds_done}.npy"
        command = reid_command("embed", str(self.images), "--out", str(out), *self.engine_flags())
        run = run_cli(command, out.with_suffix(".log"))
        result = self.results["reid embed"]
        result.rates.append(self.count / run.wall)
        result.note("img/s after load", self.count / run.after_load)
        result.note("CPU ms/img", 1000 * run.cpu / self.count)

    def index(self) -> None:
        gallery = self.scratch / f"gallery-{self.rounds_done}"
        command = reid_command("index", str(self.images), "--gallery", str(gallery), *self.engine_flags())
        run = run_cli(command, self.scratch / f"index-{self.rounds_done}.log")
        reported = INDEX_RATE.search(run.output)
        if reported is None or int(reported.group(1)) != self.count:
            raise RuntimeError(f"reid index did not index {self.count} images: see its log")
        result = self.results["reid index"]
        result.rates.append(self.count / run.wall)
        result.note("img/s after load", self.count / run.after_load)
        result.note("img/s reported", float(reported.group(2)))
        result.note("CPU ms/img", 1000 * run.cpu / self.count)

    def start_clients(self, url: str) -> None:
        for concurrency, images in self.loads:
            command = [sys.executable, str(load_test.CLIENT), url, "--concurrency", str(concurrency)]
            command += ["--images", str(images)]
            client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert client.stdout is not None
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError("the load client did not start")
            self.clients[concurrency, images] = client
            self.results[http_name(concurrency, images)] = Rates(http_name(concurrency, images))

    def http(self, concurrency: int, images: int) -> None:
        client = self.clients[concurrency, images]
        assert client.stdin is not None
        assert client.stdout is not None
        # CPU time over the whole slice (warm-up included), per image completed in the measured window,
        # assuming the warm-up runs at the same rate.
        server_cpu, client_cpu = time.process_time(), cpu_seconds(client.pid)
        client.stdin.write(f"{self.args.warmup} {self.args.http_seconds}\n")
        client.stdin.flush()
        answer = client.stdout.readline()
        if not answer:
            raise RuntimeError("the load client stopped (its error is above)")
        tally = Tally(**json.loads(answer))
        if tally.errors or not tally.completed:
            raise RuntimeError(f"HTTP: {tally.errors} errors of {tally.completed} requests")
        share = tally.seconds / (tally.seconds + self.args.warmup)
        result = self.results[http_name(concurrency, images)]
        count = tally.completed * images
        result.rates.append(count / tally.seconds)
        result.note("mean batch", tally.images / max(tally.forwards, 1))
        result.note("p50 ms", float(np.percentile(tally.latencies, 50) * 1000))
        result.note("CPU ms/img", 1000 * share * (time.process_time() - server_cpu) / count)
        result.note("client CPU ms/img", 1000 * share * (cpu_seconds(client.pid) - client_cpu) / count)
        for name, values in tally.server_ms.items():
            result.note(f"{name.removeprefix('x-').removesuffix('-time')} ms", float(np.nanmean(values)))

    def stop_clients(self) -> None:
        for client in self.clients.values():
            assert client.stdin is not None
            client.stdin.close()
            client.wait(timeout=120)

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        http = [(http_name(c, n), lambda c=c, n=n: self.http(c, n)) for c, n in self.clients]
        return [
            ("model only", self.model_only),
            ("reid embed", self.embed),
            ("reid index", self.index),
            *http,
        ]


def parse_load(spec: str) -> tuple[int, int]:
    """``16x4`` → (16 requests in flight, 4 images each)."""
    concurrency, _, images = spec.partition("x")
    return int(concurrency), int(images or 1)


def http_name(concurrency: int, images: int) -> str:
    return f"HTTP {concurrency}×{images} img"


def report(results: dict[str, Rates], ceiling_name: str, loads: list[float]) -> None:
    ceiling = statistics.median(results[ceiling_name].rates)
    print(f"\n{'path':<18} {'img/s median (min–max)':<24} {'× model only':>12}  other medians")
    for result in results.values():
        median = statistics.median(result.rates)
        others = ", ".join(f"{key} {statistics.median(values):.1f}" for key, values in result.notes.items())
        print(f"{result.name:<18} {spread(result.rates):<24} {median / ceiling:>12.2f}  {others}")
    embed = results["reid embed"]
    embed_ready = statistics.median(embed.notes["img/s after load"])
    print(f"\nagainst reid embed after load ({embed_ready:.1f} img/s):")
    for result in results.values():
        if result is not embed:
            rate = statistics.median(result.notes.get("img/s after load", result.rates))
            print(f"  {result.name:<18} {rate / embed_ready:6.2f}")
    print(f"load average (1 min) during the run: {min(loads):.2f}–{max(loads):.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "faiss.loader"):  # one line per readiness poll, library probing
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    images, artifact = setup(args)
    service_args = load_test.parse_args(
        [
            "--weights",
            str(artifact),
            "--max-batch-size",
            str(args.batch_size),
            "--max-batch-delay-ms",
            str(args.max_batch_delay_ms),
            "--concurrency",
            str(max(parse_load(spec)[0] for spec in args.clients.split(","))),
        ]
    )
    extractor = load_test.build_extractor(service_args)
    info = extractor.info()
    logger.info("CPU: %s", cpu_description())
    logger.info(
        "%s %s on %s: %s",
        info["backbone"],
        "×".join(map(str, info["input_size"])),
        info["runtime"],
        {k: info[k] for k in ("inference_precision", "requests_in_flight") if k in info},
    )
    paths = Paths(args, images, artifact, extractor)
    extractor.warmup((args.batch_size,))
    loads: list[float] = []
    try:
        with load_test.serve(extractor, service_args, args.work / "service-gallery") as url:
            paths.start_clients(url)
            steps = paths.steps()
            for round_number in range(args.rounds):
                shift = round_number % len(steps)  # rotate the order: no path always follows the same one
                for name, step in steps[shift:] + steps[:shift]:
                    loads.append(os.getloadavg()[0])
                    logger.info("round %d/%d: %s", round_number + 1, args.rounds, name)
                    step()
                paths.rounds_done += 1
            paths.stop_clients()
    finally:
        extractor.close()
    report(paths.results, f"model only b{args.batch_size}", loads)
    every_round = {name: {"img/s": r.rates, **r.notes} for name, r in paths.results.items()}
    summary = {
        "cpu": cpu_description(),
        "artifact": str(artifact),
        "load_average": loads,
        "paths": every_round,
    }
    (args.work / "results.json").write_text(json.dumps(summary, indent=1))
    logger.info("every round's figures: %s", args.work / "results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
