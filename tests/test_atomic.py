"""atomic_write: every file matap writes is either the old one or the new one, never a part."""

import pytest

from matap.atomic import atomic_write


def test_text_bytes_and_writer_functions(tmp_path):
    assert atomic_write(tmp_path / "a" / "t.txt", "± text") == tmp_path / "a" / "t.txt"
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "± text"
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    atomic_write(tmp_path / "c.bin", lambda fh: fh.write(b"written"))
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01" and (tmp_path / "c.bin").read_bytes() == b"written"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path):
    path = tmp_path / "results.json"
    atomic_write(path, "old")

    def fail(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
