"""Market-1501 style datasets: labels parsed from file names, and the query / gallery layout.

Recognised names (the stem decides; the extension does not matter):

* Market-1501 ``0002_c1s1_000451_03.jpg``: person 2, camera 1, sequence 1, frame 451, detection 3.
* DukeMTMC-reID ``0001_c2_f0046182.jpg``: person 1, camera 2, frame 46182.
* MSMT17 ``0000_045_12_0303morning_0006_2.jpg``: person 0, camera 12, frame 6. MSMT17 numbers people
  from 0 within each of its train / test folders, so ``0`` is a real person there, not a distractor.

Camera ids are kept exactly as written in the name, so they are 1-based.

Evaluation protocol (Zheng et al., ICCV 2015), as applied by :func:`reid.evaluation.evaluate_rank`:
person ``-1`` marks junk detections (kept in the gallery list here, flagged by
:attr:`ImageRecord.is_junk`, and ignored when ranking); person ``0000`` marks distractors, which stay in
the gallery and count as wrong matches; for each query, gallery images of the same person seen by the
same camera are ignored, since matching them is trivial.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reid.datasets.records import JUNK_PID, ImageRecord, is_image_file
from reid.errors import ConfigError

logger = logging.getLogger(__name__)

Scheme = Literal["market1501", "dukemtmc", "msmt17"]

QUERY_DIR = "query"
GALLERY_DIR = "bounding_box_test"
TRAIN_DIR = "bounding_box_train"

_PATTERNS: tuple[tuple[Scheme, re.Pattern[str]], ...] = (
    ("market1501", re.compile(r"(?P<pid>-1|\d+)_c(?P<cam>\d+)s(?P<seq>\d+)_(?P<frame>\d+)_\d+")),
    ("dukemtmc", re.compile(r"(?P<pid>-1|\d+)_c(?P<cam>\d+)_f(?P<frame>\d+)")),
    (
        "msmt17",
        re.compile(r"(?P<pid>\d+)_\d+_(?P<cam>\d+)_\d{4}(?:morning|noon|afternoon)_(?P<frame>\d+)_\d+"),
    ),
)


@dataclass(frozen=True)
class MarketName:
    """Labels parsed from one file name."""

    person_id: int
    camera_id: int
    scheme: Scheme
    sequence: int | None = None
    frame: int | None = None

    @property
    def is_junk(self) -> bool:
        return self.person_id == JUNK_PID

    @property
    def track_id(self) -> str | None:
        """``"<person>_c<camera>s<sequence>"``: the crops of one person in one camera sequence form a track.
        ``None`` where the scheme has no sequence, and for junk and distractors (no identity to follow)."""
        if self.sequence is None or self.person_id < 1:
            return None
        return f"{self.person_id:04d}_c{self.camera_id}s{self.sequence}"


def match_market_name(name: str | Path) -> MarketName | None:
    """Labels of a Market-1501 / DukeMTMC-reID / MSMT17 file name, or ``None`` if it is none of them."""
    stem = Path(name).stem
    for scheme, pattern in _PATTERNS:
        found = pattern.fullmatch(stem)
        if found is not None:
            groups = found.groupdict()
            return MarketName(
                person_id=int(groups["pid"]),
                camera_id=int(groups["cam"]),
                scheme=scheme,
                sequence=int(groups["seq"]) if groups.get("seq") else None,
                frame=int(groups["frame"]),
            )
    return None


def parse_market_name(name: str | Path) -> MarketName:
    """Like :func:`match_market_name`, but an unrecognised name raises :class:`ConfigError`."""
    parsed = match_market_name(name)
    if parsed is None:
        raise ConfigError(
            f"{Path(name).name}: not a Market-1501 style name "
            "(expected e.g. 0002_c1s1_000451_03.jpg or 0001_c2_f0046182.jpg)"
        )
    return parsed


def scan_market_split(folder: str | Path) -> list[ImageRecord]:
    """Every image directly inside one split folder, sorted by name.

    Keys are ``"<split folder name>/<file name>"`` (relative to the dataset root), so query and gallery
    keys never collide. A file with an image extension but an unrecognised name raises
    :class:`ConfigError`: an unlabelled image would silently distort the evaluation.
    """
    folder = Path(folder)
    records = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p)):
        parsed = parse_market_name(path.name)
        records.append(
            ImageRecord(
                path=path,
                key=f"{folder.name}/{path.name}",
                person_id=parsed.person_id,
                camera_id=parsed.camera_id,
                track_id=parsed.track_id,
            )
        )
    return records


@dataclass(frozen=True)
class MarketDataset:
    """A Market-1501 layout: ``query`` and ``gallery`` (from ``bounding_box_test``, junk included),
    and ``train`` (from ``bounding_box_train``; empty when that folder is absent)."""

    root: Path
    query: tuple[ImageRecord, ...]
    gallery: tuple[ImageRecord, ...]
    train: tuple[ImageRecord, ...] = ()


def _has_layout(folder: Path) -> bool:
    return (folder / QUERY_DIR).is_dir() and (folder / GALLERY_DIR).is_dir()


def _locate_root(root: Path) -> Path:
    """``root`` itself, or its only sub-folder with the layout (archives unpack to one, e.g.
    ``Market-1501-v15.09.15/``)."""
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    if _has_layout(root):
        return root
    candidates = [child for child in sorted(root.iterdir()) if child.is_dir() and _has_layout(child)]
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(sorted(child.name for child in root.iterdir() if child.is_dir())) or "no folders"
    raise ConfigError(
        f"{root}: not a Market-1501 layout: expected folders {QUERY_DIR}/ and {GALLERY_DIR}/ (found {found})"
    )


def load_market(root: str | Path) -> MarketDataset:
    """Read a Market-1501 / DukeMTMC-reID folder; :class:`ConfigError` if the layout is wrong or a
    split is empty."""
    root = _locate_root(Path(root))
    query = tuple(scan_market_split(root / QUERY_DIR))
    gallery = tuple(scan_market_split(root / GALLERY_DIR))
    train = tuple(scan_market_split(root / TRAIN_DIR)) if (root / TRAIN_DIR).is_dir() else ()
    for name, split in ((QUERY_DIR, query), (GALLERY_DIR, gallery)):
        if not split:
            raise ConfigError(f"{root / name}: no images")
    logger.info(
        "%s: %d query, %d gallery (%d junk), %d train images",
        root,
        len(query),
        len(gallery),
        sum(record.is_junk for record in gallery),
        len(train),
    )
    return MarketDataset(root=root, query=query, gallery=gallery, train=train)
