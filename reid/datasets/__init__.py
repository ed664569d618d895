"""Image sources: Market-1501 style datasets, manifests, folder trees, and a synthetic generator."""

from reid.datasets.image_lists import discover_source, read_image_list, scan_folder
from reid.datasets.market import (
    MarketDataset,
    MarketName,
    load_market,
    match_market_name,
    parse_market_name,
    scan_market_split,
)
from reid.datasets.records import (
    DISTRACTOR_PID,
    IMAGE_EXTENSIONS,
    JUNK_PID,
    ImageRecord,
    is_image_file,
    label_arrays,
)
from reid.datasets.synthetic import make_synthetic_market

__all__ = [
    "DISTRACTOR_PID",
    "IMAGE_EXTENSIONS",
    "JUNK_PID",
    "ImageRecord",
    "MarketDataset",
    "MarketName",
    "discover_source",
    "is_image_file",
    "label_arrays",
    "load_market",
    "make_synthetic_market",
    "match_market_name",
    "parse_market_name",
    "read_image_list",
    "scan_folder",
    "scan_market_split",
]
