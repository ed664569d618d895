import logging
from html.parser import HTMLParser
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from reid.errors import ConfigError
from reid.evaluation import visualize
from reid.evaluation.visualize import IndexEntry, render_ranked_list, write_html_index

HEIGHT, WIDTH = 40, 20
COLOURS = [(10, 20, 30), (200, 180, 40), (90, 30, 160), (30, 200, 200)]


@pytest.fixture
def pictures(tmp_path):
    paths = []
    for i, colour in enumerate(COLOURS):
        path = tmp_path / "images" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (WIDTH, HEIGHT), colour).save(path)
        paths.append(path)
    return paths


def _tile_left(index: int) -> int:
    """Left edge of tile ``index`` (0 = query) as the module docstring describes the layout."""
    step = WIDTH + 2 * visualize.BORDER + visualize.GAP
    if index == 0:
        return visualize.GAP
    return visualize.GAP + step + visualize.QUERY_GAP + (index - 1) * step


def test_strip_size_borders_and_pictures(tmp_path, pictures):
    query, *gallery = pictures
    out = render_ranked_list(
        query,
        gallery,
        [True, False, True],
        tmp_path / "out" / "q.png",
        scores=[0.1, 0.25, 0.5],
        size=(HEIGHT, WIDTH),
    )
    assert out == tmp_path / "out" / "q.png"
    with Image.open(out) as image:
        strip = image.convert("RGB")
    tile_w, tile_h = WIDTH + 2 * visualize.BORDER, HEIGHT + 2 * visualize.BORDER
    assert strip.size == (
        _tile_left(3) + tile_w + visualize.GAP,
        2 * visualize.GAP + tile_h + visualize.LABEL_HEIGHT,
    )
    frames = [
        visualize.QUERY_COLOUR,
        visualize.MATCH_COLOUR,
        visualize.MISMATCH_COLOUR,
        visualize.MATCH_COLOUR,
    ]
    for index, (frame, colour) in enumerate(zip(frames, COLOURS, strict=True)):
        left, top = _tile_left(index), visualize.GAP
        assert strip.getpixel((left, top + tile_h // 2)) == frame
        assert strip.getpixel((left + tile_w - 1, top + tile_h - 1)) == frame
        assert strip.getpixel((left + tile_w // 2, top + tile_h // 2)) == colour
        assert strip.getpixel((left - 1, top + tile_h // 2)) == visualize.BACKGROUND
        label = strip.crop((left, top + tile_h, left + tile_w, top + tile_h + visualize.LABEL_HEIGHT))
        assert np.asarray(label).min() < 128  # some dark text is drawn


def test_unreadable_picture_becomes_placeholder(tmp_path, pictures, caplog):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING):
        out = render_ranked_list(
            pictures[0],
            [broken, tmp_path / "gone.jpg"],
            [False, True],
            tmp_path / "s.png",
            size=(HEIGHT, WIDTH),
        )
    assert "broken.jpg" in caplog.text
    assert "gone.jpg" in caplog.text
    with Image.open(out) as image:
        centre = image.convert("RGB").getpixel((_tile_left(1) + WIDTH // 2, visualize.GAP + HEIGHT // 2))
    assert centre == visualize._MISSING_COLOUR


def test_lengths_must_agree(tmp_path, pictures):
    with pytest.raises(ConfigError, match="same length"):
        render_ranked_list(pictures[0], pictures[1:], [True], tmp_path / "x.png")
    with pytest.raises(ConfigError, match="same length"):
        render_ranked_list(pictures[0], pictures[1:2], [True], tmp_path / "x.png", scores=[0.1, 0.2])


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.sources, self.captions = [], [], []
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a":
            self.hrefs.append(attributes["href"])
        elif tag == "img":
            self.sources.append(attributes["src"])
        self._in_caption = tag == "figcaption"

    def handle_endtag(self, tag):
        self._in_caption = False

    def handle_data(self, data):
        if self._in_caption:
            self.captions.append(data)


def test_html_index_links_every_png_relatively(tmp_path, pictures):
    out_dir = tmp_path / "report"
    names = ["q 1.png", "a&b#2.png", "<x>.png", "été.png"]
    for name in names:
        render_ranked_list(
            pictures[0], pictures[1:2], [True], out_dir / "strips" / name, size=(HEIGHT, WIDTH)
        )
    entries = [IndexEntry(out_dir / "strips" / names[0], "query <1> & co")]  # absolute inside out_dir
    entries += [IndexEntry(f"strips/{name}") for name in names[1:]]  # relative to out_dir
    page = write_html_index(out_dir, entries, title="Eval <synthetic>", summary="mAP  100.00%")
    assert page == out_dir / "index.html"
    text = page.read_text(encoding="utf-8")
    assert "<title>Eval &lt;synthetic&gt;</title>" in text
    assert "<pre>mAP  100.00%</pre>" in text
    parser = _Links()
    parser.feed(text)
    assert parser.hrefs == parser.sources
    assert all(not href.startswith("/") for href in parser.hrefs)
    assert [out_dir / unquote(href) for href in parser.hrefs] == sorted(
        (out_dir / "strips").glob("*.png"), key=lambda path: names.index(path.name)
    )
    assert parser.captions == ["query <1> & co"]
