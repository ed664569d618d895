"""`reid bench`: options reach the benchmark, the table is printed and the JSON written."""

from __future__ import annotations

import argparse
import json

import pytest

from reid.cli import bench as bench_cli


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    bench_cli.register(sub)
    return parser.parse_args(["bench", *argv])


def test_options_become_the_config():
    args = _parse(
        ["--preset", "resnet18", "--batch-sizes", "1,4", "--variants", "bf16, compile", "--min-time", "0.5"]
    )
    config = bench_cli.config_from_args(args)
    assert (config.preset, config.batch_sizes, config.variants, config.min_time) == (
        "resnet18",
        (1, 4),
        ("bf16", "compile"),
        0.5,
    )
    assert config.decode_threads is None
    assert config.weights is None


def test_bad_batch_sizes_are_a_usage_error():
    with pytest.raises(SystemExit):
        _parse(["--batch-sizes", "1,x"])


def test_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = "--preset resnet18 --height 64 --width 32 --batch-sizes 2 --variants channels_last"
    argv += f" --min-time 0.02 --rounds 1 --decode-threads 1 --json {out}"
    assert bench_cli.main(argv.split()) == 0
    printed = capsys.readouterr().out
    assert "channels_last" in printed
    assert "img/s" in printed
    record = json.loads(out.read_text())
    assert [r["variant"] for r in record["model"]] == ["fp32", "channels_last"]
    assert record["decode"][0]["threads"] == 1
