"""Pictures of ranked lists: one PNG strip per query and an HTML page indexing them.

Strip layout (all in pixels; ``size`` is the (height, width) each picture is fitted into): a margin of
:data:`GAP`, then the query tile, :data:`QUERY_GAP` + :data:`GAP`, then the gallery tiles separated by
:data:`GAP`. Every tile is its picture surrounded by a :data:`BORDER`-wide frame (blue for the query,
green for the same person, red for another) with a :data:`LABEL_HEIGHT` text band below it.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont, ImageOps

from reid.errors import ConfigError

logger = logging.getLogger(__name__)

BORDER = 4
GAP = 6
QUERY_GAP = 12
LABEL_HEIGHT = 14
QUERY_COLOUR = (40, 90, 220)
MATCH_COLOUR = (0, 170, 0)
MISMATCH_COLOUR = (220, 0, 0)
BACKGROUND = (255, 255, 255)
_MISSING_COLOUR = (200, 200, 200)
_TEXT_COLOUR = (0, 0, 0)


def _load_tile(path: str | Path, height: int, width: int) -> Image.Image:
    """The picture fitted into (height, width), aspect kept; a grey tile if it cannot be read, so one
    moved file does not lose the whole page."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale, much faster
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, Image.DecompressionBombError) as exc:
        logger.warning("cannot draw %s: %s", path, exc)
        return Image.new("RGB", (width, height), _MISSING_COLOUR)
    return ImageOps.pad(upright, (width, height), color=BACKGROUND)


def render_ranked_list(
    query_path: str | Path,
    gallery_paths: Sequence[str | Path],
    matches: Sequence[bool],
    out_png: str | Path,
    *,
    scores: Sequence[float] | None = None,
    size: tuple[int, int] = (128, 64),
) -> Path:
    """Write a PNG strip: the query, then ``gallery_paths`` in rank order framed green where
    ``matches`` is true and red otherwise, labelled with the rank and, if given, the score."""
    if len(matches) != len(gallery_paths) or (scores is not None and len(scores) != len(gallery_paths)):
        raise ConfigError("gallery_paths, matches and scores must have the same length")
    height, width = size
    tile_w, tile_h = width + 2 * BORDER, height + 2 * BORDER
    count = len(gallery_paths)
    canvas = Image.new(
        "RGB",
        (2 * GAP + QUERY_GAP + (count + 1) * tile_w + count * GAP, 2 * GAP + tile_h + LABEL_HEIGHT),
        BACKGROUND,
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    tiles = [(query_path, QUERY_COLOUR, "query")]
    for rank, (path, match) in enumerate(zip(gallery_paths, matches, strict=True), start=1):
        label = f"#{rank}" if scores is None else f"#{rank} {scores[rank - 1]:.3f}"
        tiles.append((path, MATCH_COLOUR if match else MISMATCH_COLOUR, label))
    for index, (path, colour, label) in enumerate(tiles):
        left = GAP + index * (tile_w + GAP) + (QUERY_GAP if index else 0)
        draw.rectangle((left, GAP, left + tile_w - 1, GAP + tile_h - 1), fill=colour)
        canvas.paste(_load_tile(path, height, width), (left + BORDER, GAP + BORDER))
        draw.text((left, GAP + tile_h + 1), label, fill=_TEXT_COLOUR, font=font)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out_png)
    return out_png


@dataclass(frozen=True)
class IndexEntry:
    """One picture on the index page: its file (absolute, or relative to the page's folder) and a
    caption (plain text; escaped when written)."""

    image: str | Path
    caption: str = ""


def write_html_index(
    out_dir: str | Path, entries: Sequence[IndexEntry], *, title: str = "reid results", summary: str = ""
) -> Path:
    """Write ``out_dir/index.html`` showing every entry's picture with a relative link to it;
    ``summary`` (e.g. the metrics table) is shown pre-formatted at the top."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif} figure{margin:1em 0} img{image-rendering:pixelated}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    if summary:
        parts.append(f"<pre>{html.escape(summary)}</pre>")
    for entry in entries:
        relative = Path(os.path.relpath(Path(out_dir, entry.image), out_dir)).as_posix()
        href = html.escape(quote(relative))
        parts.append(
            f'<figure><a href="{href}"><img src="{href}" alt="{html.escape(relative)}"></a>'
            f"<figcaption>{html.escape(entry.caption)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    page = out_dir / "index.html"
    page.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return page
