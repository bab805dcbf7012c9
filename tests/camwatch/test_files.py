"""camwatch.files: reads confined to a root (links out, FIFOs, devices, size caps, swaps between check and
open) and the text form of names that are not UTF-8."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camwatch.files import (
    UnsafeFile,
    check_confined,
    display_path,
    hash_confined,
    open_confined,
    paths_for_uri,
    read_confined,
    uri_for_path,
)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "root-sibling"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "in.txt").write_bytes(b"inside")
    (outside / "secret.txt").write_bytes(b"secret")
    return root, outside


def test_a_regular_file_inside_is_read(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert read_confined(root / "sub" / "in.txt", root, max_bytes=100) == b"inside"
    (root / "alias.txt").symlink_to(root / "sub" / "in.txt")  # a link inside the root is followed
    assert read_confined(root / "alias.txt", root, max_bytes=100) == b"inside"
    assert hash_confined(root / "alias.txt", root, max_bytes=100) == (hashlib.sha256(b"inside").hexdigest(), 6)


@pytest.mark.parametrize("how", ["file link", "folder link", "sibling prefix", "dot-dot"])
def test_nothing_outside_the_root_is_read(tree: tuple[Path, Path], how: str) -> None:
    root, outside = tree
    if how == "file link":
        path = root / "link.txt"
        path.symlink_to(outside / "secret.txt")
    elif how == "folder link":
        (root / "out").symlink_to(outside, target_is_directory=True)
        path = root / "out" / "secret.txt"
    elif how == "sibling prefix":  # "/x/root-sibling" starts with "/x/root": a string prefix check lets it in
        path = outside / "secret.txt"
    else:
        path = root / "sub" / ".." / ".." / "root-sibling" / "secret.txt"
    with pytest.raises(UnsafeFile, match="outside the source root") as caught:
        read_confined(path, root, max_bytes=100)
    assert "secret" not in caught.value.reason


def test_fifo_and_device_are_refused_without_blocking(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    os.mkfifo(root / "pipe.jpg")
    result: list[BaseException] = []
    reader = threading.Thread(target=lambda: result.append(pytest.raises(UnsafeFile, read_confined, root / "pipe.jpg",
                                                                         root, max_bytes=10).value))
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive() and "FIFO" in str(result[0])  # refused at once, never opened for reading
    (root / "zero").symlink_to("/dev/zero")
    with pytest.raises(UnsafeFile, match="outside the source root"):
        read_confined(root / "zero", root, max_bytes=10)
    with pytest.raises(UnsafeFile, match="character device"):
        check_confined("/dev/zero", "/dev")
    with pytest.raises(UnsafeFile, match="directory"):
        read_confined(root / "sub", root, max_bytes=10)


def test_size_cap_and_missing_file(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(UnsafeFile, match="6 bytes, above the limit of 5"):
        read_confined(root / "sub" / "in.txt", root, max_bytes=5)
    with pytest.raises(UnsafeFile, match="above the limit"):
        hash_confined(root / "sub" / "in.txt", root, max_bytes=5)
    with pytest.raises(UnsafeFile, match="file not found"):
        read_confined(root / "nope", root, max_bytes=5)


def test_a_file_swapped_between_check_and_open_is_refused(tree: tuple[Path, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The inode opened must be the inode checked: a swap in between (a race an attacker can win) is caught."""
    root, outside = tree
    target = root / "sub" / "in.txt"
    real_open = os.open

    def swapping_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).endswith("in.txt"):
            os.replace(outside / "secret.txt", target)  # another file under the checked name
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", swapping_open)
    with pytest.raises(UnsafeFile, match="replaced by another file"):
        read_confined(target, root, max_bytes=100)


def test_open_confined_gives_a_readable_handle(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with open_confined(root / "sub" / "in.txt", root, max_bytes=100) as handle:
        assert handle.read() == b"inside"


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\x00" not in b))
def test_uri_of_any_name_is_storable_text_and_names_the_file_again(raw: bytes) -> None:
    path = os.fsdecode(b"/data/" + raw)
    uri = uri_for_path(path)
    uri.encode("utf-8")  # storable: never raises
    assert os.fsencode(str(paths_for_uri(uri)[-1])) == b"/data/" + raw or str(paths_for_uri(uri)[0]) == path
    assert display_path(path) == uri


def test_non_utf8_name_round_trip(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xff.jpg")
    (tmp_path / name).write_bytes(b"x")
    uri = uri_for_path(str(tmp_path / name))
    assert uri.endswith("bad\\xff.jpg")
    assert [p.exists() for p in paths_for_uri(uri)] == [False, True]
    assert read_confined(paths_for_uri(uri)[1], tmp_path, max_bytes=5) == b"x"
    assert uri_for_path("/plain/ascii.jpg") == "/plain/ascii.jpg" and paths_for_uri("/plain/ascii.jpg") == [
        Path("/plain/ascii.jpg")]
