"""vocab.atomic: a file or folder is the old one or the new one, never a half; nothing is left behind."""

import os
import stat

import pytest

from vocab.atomic import atomic_dir, atomic_path, write_text_atomic


class Boom(Exception):
    pass


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = write_text_atomic(tmp_path / "log.jsonl", "old\n")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        assert tmp.parent == target.parent and tmp.suffix == ".jsonl"  # beside it, the format's suffix kept
        raise Boom
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["log.jsonl"]


@pytest.mark.parametrize("mode", [0o644, 0o600])
def test_the_new_file_replaces_the_old_with_its_mode(tmp_path, mode):
    target = write_text_atomic(tmp_path / "sub" / "f.pt", "old")  # the folder is made
    with atomic_path(target, mode=mode, durable=True) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_text() == "old"  # the old file until the block ends
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == mode
    assert os.listdir(target.parent) == ["f.pt"]


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    dest = tmp_path / "copy"
    with pytest.raises(Boom), atomic_dir(dest) as tmp:
        (tmp / "a").write_text("a")
        raise Boom
    assert os.listdir(tmp_path) == []  # no dest, no .partial folder
    with atomic_dir(dest) as tmp:
        (tmp / "a").write_text("a")
        assert not dest.exists()
    assert os.listdir(dest) == ["a"] and os.listdir(tmp_path) == ["copy"]
