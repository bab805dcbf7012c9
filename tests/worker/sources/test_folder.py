"""Tests for worker.sources.folder: completeness, ignore rules, symlinks, events and rescans."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from worker.sources.folder import FileCandidate, FolderSource

STABLE = 0.2


def _poll_until(source: FolderSource, done: Callable[[list[FileCandidate]], bool],
                timeout: float = 5.0) -> list[FileCandidate]:
    """Poll every 50 ms, accumulating candidates, until ``done(all_so_far)`` or the timeout."""
    seen: list[FileCandidate] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += source.poll()
        if done(seen):
            break
        time.sleep(0.05)
    return seen


def _settle(source: FolderSource, seconds: float = 3 * STABLE) -> list[FileCandidate]:
    """Everything the source returns over ``seconds`` of polling."""
    return _poll_until(source, lambda _: False, timeout=seconds)


@pytest.mark.parametrize("use_events", [True, False])
def test_half_written_file_returned_once_when_complete(tmp_path: Path, use_events: bool) -> None:
    chunk = b"\xff" * 4096
    with FolderSource(tmp_path, stable_seconds=1.0, rescan_interval=0.1, use_events=use_events) as source:
        assert source.poll() == []
        path = tmp_path / "photo.jpg"
        with path.open("wb") as handle:  # one open file, written in chunks with pauses shorter than stable
            for _ in range(6):
                handle.write(chunk)
                handle.flush()
                assert source.poll() == []
                time.sleep(0.1)
                assert source.poll() == []
        found = _poll_until(source, bool)
        assert [(c.relative_path, c.size_bytes) for c in found] == [("photo.jpg", 6 * 4096)]
        assert found[0].path == tmp_path.resolve() / "photo.jpg" and found[0].uri == str(found[0].path)
        assert found[0].mtime_ns == path.stat().st_mtime_ns
        assert _settle(source) == []


def test_closed_event_completes_without_waiting(tmp_path: Path) -> None:
    with FolderSource(tmp_path, stable_seconds=60, rescan_interval=60) as source:
        source.poll()
        (tmp_path / "a.png").write_bytes(b"x" * 100)
        found = _poll_until(source, bool, timeout=3)
        assert [c.relative_path for c in found] == ["a.png"]


def test_stability_without_events_needs_two_observations(tmp_path: Path) -> None:
    (tmp_path / "old.jpg").write_bytes(b"x")
    with FolderSource(tmp_path, stable_seconds=STABLE, use_events=False) as source:
        assert source.poll() == []  # first observation
        found = _poll_until(source, bool)
        assert [c.relative_path for c in found] == ["old.jpg"]


def test_renamed_in_part_file_picked_up_by_event(tmp_path: Path) -> None:
    with FolderSource(tmp_path, stable_seconds=60, rescan_interval=60) as source:
        source.poll()
        part = tmp_path / "b.jpg.part"
        part.write_bytes(b"y" * 50)
        assert _settle(source, 0.3) == []  # the .part file itself is ignored
        os.rename(part, tmp_path / "b.jpg")
        found = _poll_until(source, bool, timeout=3)
        assert [(c.relative_path, c.size_bytes) for c in found] == [("b.jpg", 50)]


def test_rescan_without_events_finds_new_files(tmp_path: Path) -> None:
    with FolderSource(tmp_path, stable_seconds=STABLE, rescan_interval=0.1, use_events=False) as source:
        assert source.poll() == []
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "c.webp").write_bytes(b"z")
        found = _poll_until(source, bool)
        assert [c.relative_path for c in found] == ["sub/c.webp"]
    with FolderSource(tmp_path, stable_seconds=STABLE, rescan_interval=60, use_events=False) as slow:
        slow.poll()
        (tmp_path / "d.jpg").write_bytes(b"z")
        assert [c.relative_path for c in _settle(slow)] == ["sub/c.webp"]  # d.jpg waits for the next rescan


def test_ignored_files(tmp_path: Path) -> None:
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "visible").mkdir()
    names = ["ok.jpg", "UPPER.JPEG", "visible/ok.tiff", ".dot.jpg", ".hidden/in_hidden.jpg", "x.jpg.part",
             "x.tmp", "x.jpg~", "x.mask.png", "x.jpg.json", "x.xml", "x.txt", "doc.pdf", "noext"]
    for name in names:
        (tmp_path / name).write_bytes(b"data")
    with FolderSource(tmp_path, stable_seconds=STABLE, use_events=False) as source:
        found = sorted(c.relative_path for c in _settle(source))
    assert found == ["UPPER.JPEG", "ok.jpg", "visible/ok.tiff"]


def test_ignored_files_arriving_as_events(tmp_path: Path) -> None:
    (tmp_path / ".cache").mkdir()
    with FolderSource(tmp_path, stable_seconds=STABLE, rescan_interval=60) as source:
        source.poll()
        for name in (".cache/a.jpg", ".b.jpg", "c.mask.png", "d.tmp", "e.gif"):
            (tmp_path / name).write_bytes(b"data")
        assert [c.relative_path for c in _settle(source)] == ["e.gif"]


def test_symlinks_inside_followed_outside_not(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (root / "real" / "a.jpg").write_bytes(b"a")
    (outside / "secret.jpg").write_bytes(b"s")
    (root / "link.jpg").symlink_to(root / "real" / "a.jpg")  # file link inside: followed
    (root / "alias").symlink_to(root / "real")  # folder link inside: same folder, listed once
    (root / "real" / "loop").symlink_to(root)  # a loop
    (root / "escape").symlink_to(outside)  # folder link outside: not followed
    (root / "escape.jpg").symlink_to(outside / "secret.jpg")  # file link outside: not followed
    (root / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")
    with FolderSource(root, stable_seconds=STABLE, use_events=False) as source:
        found = _settle(source)
    assert sorted(c.relative_path for c in found) == ["link.jpg", "real/a.jpg"]
    link = next(c for c in found if c.relative_path == "link.jpg")
    assert link.path == root / "link.jpg" and link.size_bytes == 1


def test_symlinked_folder_inside_root_is_followed(tmp_path: Path) -> None:
    (tmp_path / ".store").mkdir()  # hidden, so reachable only through the link
    (tmp_path / ".store" / "p.png").write_bytes(b"p")
    (tmp_path / "shown").symlink_to(tmp_path / ".store")
    with FolderSource(tmp_path, stable_seconds=STABLE, use_events=False) as source:
        assert [c.relative_path for c in _settle(source)] == ["shown/p.png"]


def test_symlink_to_outside_created_while_watching(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"s")
    with FolderSource(root, stable_seconds=STABLE, rescan_interval=0.1) as source:
        source.poll()
        (root / "escape.jpg").symlink_to(outside / "secret.jpg")
        (root / "fine.jpg").write_bytes(b"f")
        assert [c.relative_path for c in _settle(source)] == ["fine.jpg"]


def test_new_version_returned_again_and_deleted_files_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "v.jpg"
    path.write_bytes(b"1")
    with FolderSource(tmp_path, stable_seconds=STABLE, rescan_interval=0.1, use_events=False) as source:
        assert [c.size_bytes for c in _poll_until(source, bool)] == [1]
        assert _settle(source) == []
        path.write_bytes(b"22")
        assert [c.size_bytes for c in _poll_until(source, bool)] == [2]
        path.unlink()
        _settle(source, 0.3)
        path.write_bytes(b"22")
        os.utime(path, ns=(10**18, 10**18))
        assert [c.size_bytes for c in _poll_until(source, bool)] == [2]


def test_unlistable_root_does_not_forget(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"a")
    with FolderSource(root, stable_seconds=STABLE, rescan_interval=0.05, use_events=False) as source:
        assert len(_poll_until(source, bool)) == 1
        hidden_away = tmp_path / "elsewhere"
        root.rename(hidden_away)  # like an unmounted network share
        assert _settle(source, 0.3) == []
        hidden_away.rename(root)
        assert _settle(source) == []  # same version: not returned twice


def test_directory_moved_in_is_scanned(tmp_path: Path) -> None:
    root, staging = tmp_path / "root", tmp_path / "staging"
    root.mkdir()
    (staging / "batch").mkdir(parents=True)
    (staging / "batch" / "m.jpg").write_bytes(b"m")
    with FolderSource(root, stable_seconds=STABLE, rescan_interval=60) as source:
        source.poll()
        os.rename(staging / "batch", root / "batch")
        found = _poll_until(source, bool)
        assert [c.relative_path for c in found] == ["batch/m.jpg"]


def test_close_stops_observer(tmp_path: Path) -> None:
    source = FolderSource(tmp_path)
    observer = source._observer
    assert observer is not None and observer.is_alive()
    source.close()
    source.close()
    assert not observer.is_alive()


def test_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FolderSource(tmp_path / "missing")
    (tmp_path / "file.jpg").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        FolderSource(tmp_path / "file.jpg", use_events=False)


