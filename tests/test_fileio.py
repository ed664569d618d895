import pytest

from reid.fileio import atomic_file


def test_the_new_file_replaces_the_old_only_when_complete(tmp_path):
    target = tmp_path / "deep" / "state.bin"
    with atomic_file(target) as f:
        f.write(b"first")
    assert target.read_bytes() == b"first"

    def crash_while_writing() -> None:
        with atomic_file(target) as f:
            f.write(b"half of the second")
            raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        crash_while_writing()
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.bin"]  # no temporary left behind
