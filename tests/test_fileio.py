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


def test_a_mode_makes_the_file_readable_by_others(tmp_path):
    with atomic_file(tmp_path / "private") as f:
        f.write(b"x")
    with atomic_file(tmp_path / "shared", mode=0o644) as f:
        f.write(b"x")
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o644
