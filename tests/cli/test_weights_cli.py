"""`reid weights list` and `reid weights pull`, and their one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from reid.cli import main
from reid.zoo.cache import entry_dir
from tests.zoo.helpers import LoopbackServer, fastreid_checkpoint, write_zoo


@pytest.fixture
def zoo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LoopbackServer, Path]]:
    """A loopback server with a tiny fast-reid file, a zoo file naming it, and a fresh REID_HOME."""
    server = LoopbackServer()
    server.files["model.pth"] = fastreid_checkpoint()
    home = tmp_path / "home"
    zoo = write_zoo(
        tmp_path / "zoo.json",
        {
            "test/sbs_tiny": {
                "family": "tiny-sbs",
                "url": server.url("model.pth"),
                "architecture": "resnet18_ibn_a",
            }
        },
    )
    monkeypatch.setenv("REID_HOME", str(home))
    monkeypatch.setenv("REID_ZOO_FILE", str(zoo))
    monkeypatch.delenv("REID_OFFLINE", raising=False)
    with server.running():
        yield server, home


def test_list_shows_names_sizes_cache_state_and_metrics(
    zoo_env: tuple[LoopbackServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["weights", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "INPUT", "CACHED"]
    rows = {line.split()[0]: line.split(maxsplit=3)[1:] for line in lines[1:]}
    assert rows["fastreid/market_bot_R50-ibn"] == [
        "256x128",
        "-",
        "rank1 94.9, mAP 87.6, mINP 64.1 (Market-1501)",
    ]
    assert rows["fastreid/msmt_sbs_R101-ibn"][0] == "384x128"
    assert rows["test/sbs_tiny"][:2] == ["384x128", "-"]
    assert not any(name.endswith(("_S50", "mgn_R50-ibn")) for name in rows)


def test_pull_downloads_once_and_list_marks_it_cached(
    zoo_env: tuple[LoopbackServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, home = zoo_env
    path = entry_dir(home, "test/sbs_tiny") / "model.pth"
    for _ in range(2):
        assert main(["weights", "pull", "test/sbs_tiny"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"test/sbs_tiny: {path} (resnet18_ibn_a, 512-d, 384x128, sha256 ")
    assert server.requests("model.pth") == 1
    main(["weights", "list"])
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test/sbs_tiny")]
    assert row.split()[1:3] == ["384x128", "yes"]


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["weights", "pull", "test/sbs_tiny"],
            {"REID_OFFLINE": "1"},
            "test/sbs_tiny is not in the weights cache",
        ),
        (["weights", "pull", "http://example.com/m.pth"], {}, "only https URLs are allowed"),
        (["weights", "pull", "fastreid/market_bot_R50-ibm"], {}, "did you mean fastreid/market_bot_R50-ibn"),
    ],
)
def test_errors_are_one_line(
    zoo_env: tuple[LoopbackServer, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert message in err[0]
    assert zoo_env[0].requests("model.pth") == 0


def test_every_engine_command_takes_a_zoo_name(
    zoo_env: tuple[LoopbackServer, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    image = tmp_path / "a.jpg"
    Image.new("RGB", (32, 64)).save(image)
    monkeypatch.setenv("REID_OFFLINE", "yes")
    assert main(["embed", "--weights", "test/sbs_tiny", "--out", str(tmp_path / "e.npy"), str(image)]) == 2
    assert "error: test/sbs_tiny is not in the weights cache" in capsys.readouterr().err
