"""Safe folder names, folders checked before a run, OS errors as one line, file modes from the umask."""

import errno
import os

import pytest

from faithfulness import paths
from faithfulness.errors import StateError


@pytest.mark.parametrize(
    "name,expected",
    [
        ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct"),
        ("..", "unnamed"),
        ("../../etc", "etc"),
        ("/tmp/model", "tmp--model"),
        ("org/name", "org--name"),
        ("a b\\c", "a--b--c"),
        (".hidden", "hidden"),
        ("", "unnamed"),
    ],
)
def test_a_slug_is_one_safe_path_part(name, expected):
    assert paths.slug(name) == expected
    assert "/" not in paths.slug(name) and paths.slug(name) not in ("", ".", "..")


def test_inside_refuses_a_path_that_leaves_its_root(tmp_path):
    assert paths.inside(tmp_path, "a", "b") == tmp_path / "a" / "b"
    with pytest.raises(StateError, match="is outside"):
        paths.inside(tmp_path, "..", "elsewhere")
    with pytest.raises(StateError, match="is outside"):
        paths.inside(tmp_path, "/etc")


def test_check_folder_accepts_a_folder_to_be_made_and_names_what_is_wrong(tmp_path, monkeypatch):
    assert paths.check_folder("results_dir", str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is created
    (tmp_path / "file").write_text("")
    with pytest.raises(StateError, match=f"results_dir='{tmp_path}/file/x' cannot be used: {tmp_path}/file is a file"):
        paths.check_folder("results_dir", str(tmp_path / "file" / "x"))
    monkeypatch.setattr(os, "access", lambda *_: False)  # root may write anywhere: simulate a read-only folder
    with pytest.raises(StateError, match=f"cache_dir='{tmp_path}/x' cannot be used: {tmp_path} is not writable"):
        paths.check_folder("cache_dir", str(tmp_path / "x"))


def test_an_os_error_is_one_line_with_its_path_and_cause():
    assert paths.describe(PermissionError(errno.EACCES, "Permission denied", "/r/x")) == "/r/x: Permission denied"
    full = paths.describe(OSError(errno.ENOSPC, "No space left on device", "/r/y"))
    assert full.startswith("/r/y: No space left on device (free some space")
    assert paths.describe(OSError("We couldn't connect\nsecond line")) == "We couldn't connect"


def test_umask_is_read_without_changing_it():
    old = os.umask(0o027)
    try:
        assert paths.umask() == 0o027 and paths.umask() == 0o027
    finally:
        os.umask(old)
