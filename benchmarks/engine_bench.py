"""Inference benchmark, same as ``reid bench``: ``python benchmarks/engine_bench.py --help``."""

import logging
import sys

from reid.cli.bench import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
