"""An adversarial camera folder: files that real folders hold by accident or by malice.

:func:`build_corpus` writes, under ``base``, a source root with more than 40 files (valid images of every
format, broken and hostile images, hostile sidecars of every format, links out of the root, FIFOs, names
that are not UTF-8, clocks from year 1 to 9999, thousands of boxes, huge pictures) and an ``outside``
folder with secrets that must never be read. :func:`tamper_after_scan` then swaps registered files for a
link out of the root, a FIFO and new content, as an attacker or a camera would between the scan and the
processing. :data:`Corpus.expected` says what each image must become.

Run as a script (``python -m tests.support.adversarial DIR``) it writes the corpus for a measurement.
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

SECRET = "SECRET-OUTSIDE-THE-ROOT-7f3a"  # in every file outside the root
ENV_SECRET = "ENV-SECRET-VALUE-91c2"  # put in the worker's environment by the tests
HOSTILE_LABEL = "[re-login](https://evil.example/login) <img src=https://evil.example/x.png>"
HOSTILE_TAG = "![beacon](https://evil.example/beacon.png)"


@dataclass
class Corpus:
    root: Path
    outside: Path
    #: relative name under the root (as a str path, may hold surrogate escapes) -> ("ok" | "error", reason part)
    expected: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    #: relative names whose stored row must carry a warning containing this text
    warned: dict[str, str] = field(default_factory=dict)
    files: int = 0


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _photo(path: Path, seed: int, size: tuple[int, int] = (64, 48), fmt: str | None = None, **save: object) -> Path:
    pixels = _rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt, **save)
    return path


def _exif_jpeg(path: Path, seed: int, stamp: str, offset: str | None = None, orientation: int | None = None) -> Path:
    img = Image.fromarray(_rng(seed).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    exif = img.getexif()
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = stamp
    if offset is not None:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    img.save(path, format="JPEG", exif=exif)
    return path


def _nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def build_corpus(base: Path) -> Corpus:
    """Write the corpus under ``base`` (``base/root`` is the source, ``base/outside`` must never be read)."""
    root, outside = base / "root", base / "outside"
    root.mkdir(parents=True)
    outside.mkdir(parents=True)
    corpus = Corpus(root=root, outside=outside)
    ok, err = corpus.expected, corpus.expected

    def add(name: str, outcome: str, reason: str | None = None, warning: str | None = None) -> Path:
        (ok if outcome == "ok" else err)[name] = (outcome, reason)
        if warning is not None:
            corpus.warned[name] = warning
        return root / name

    # -- the outside world: secrets behind links
    (outside / "secret.txt").write_text(f"root:x:0:0:{SECRET}:/root:/bin/bash\n")
    (outside / "classes.txt").write_text(f"{SECRET}\n{SECRET}-2\n")
    (outside / "secret.json").write_text(json.dumps({"label": SECRET, "boxes": [[1, 1, 5, 5]]}))
    _photo(outside / "outside.jpg", 999)

    # -- valid images of every kind: all must be ok
    for i, (name, fmt, extra) in enumerate([
            ("good/plain.jpg", "JPEG", {}), ("good/plain.png", "PNG", {}), ("good/plain.webp", "WEBP", {}),
            ("good/plain.bmp", "BMP", {}), ("good/plain.tif", "TIFF", {}), ("good/plain.gif", "GIF", {})]):
        _photo(add(name, "ok"), i, fmt=fmt, **extra)
    Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)).save(add("good/sixteen.png", "ok"))
    Image.new("CMYK", (40, 30), (10, 200, 30, 5)).save(add("good/cmyk.jpg", "ok"))
    frames = [Image.new("P", (30, 20), c) for c in (1, 2, 3)]
    frames[0].save(add("good/anim.gif", "ok"), save_all=True, append_images=frames[1:])
    _exif_jpeg(add("good/rotated.jpg", "ok"), 11, "2024:05:06 07:08:09", "+02:00", orientation=6)
    _photo(add("good/labelled.jpg", "ok"), 12)
    (root / "good/labelled.jpg.json").write_text(json.dumps({
        "boxes": [[2, 2, 30, 30]], "label": "tabby", "tags": {"site": "north"}, "captured_at": "2025-01-02T03:04:05Z"}))

    # -- names that are not UTF-8 (processed, uri escaped)
    for i, raw in enumerate((b"bad\xff.jpg", b"latin-caf\xe9.png")):
        name = os.fsdecode(raw)
        _photo(add(f"names/{name}", "ok"), 20 + i, fmt="JPEG" if raw.endswith(b".jpg") else "PNG")

    # -- sidecars that killed every batch, and other hostile sidecars (images ok, a warning each)
    _photo(add("side/deep.jpg", "ok", warning="nested too deeply"), 30)
    (root / "side/deep.jpg.json").write_text(_nested_json(200_000))
    (root / "coco").mkdir()
    for i in range(2):
        _photo(add(f"coco/frame{i}.jpg", "ok", warning="nested too deeply"), 31 + i)
    (root / "coco/annotations.json").write_text('{"images": ' + _nested_json(200_000) + "}")
    _photo(add("side/clock0.jpg", "ok", warning="captured_at"), 33)
    (root / "side/clock0.jpg.json").write_text(json.dumps({"captured_at": "0001-01-01T00:00:00+05:00"}))
    _exif_jpeg(add("side/exif0.jpg", "ok", warning="EXIF DateTimeOriginal"), 34, "0001:01:01 00:00:00", "+05:00")
    _photo(add("side/future.jpg", "ok", warning="capture time from the sidecar"), 35)
    (root / "side/future.jpg.json").write_text(json.dumps({"captured_at": "9999-12-31T23:59:59Z"}))
    _photo(add("side/super.jpg", "ok", warning="class is not a non-negative integer"), 36)
    (root / "side/super.txt").write_text("² 0.5 0.5 0.2 0.2\n")
    _photo(add("side/long.jpg", "ok", warning="cut to"), 37)
    (root / "side/long.jpg.json").write_text(json.dumps({
        "label": "L" * 5000, "tags": {**{"k" * 500: "v" * 1000, "a=b": "x", "": "empty"},
                                      **{f"t{i}": str(i) for i in range(200)}}}))
    _photo(add("side/many.jpg", "ok", warning="above the limit"), 38)
    (root / "side/many.jpg.json").write_text(json.dumps({"boxes": [[i % 60, 1, i % 60 + 2, 9] for i in range(4000)]}))
    _photo(add("side/yolo20k.jpg", "ok", warning="above the limit"), 39)
    (root / "side/yolo20k.txt").write_text("0 0.5 0.5 0.01 0.01\n" * 20_000)
    _photo(add("side/xxe.jpg", "ok", warning="unsafe XML refused"), 40)
    (root / "side/xxe.xml").write_text(f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file://{outside}/secret.txt">]>'
                                       "<annotation><object><name>&x;</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                                       "<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    _photo(add("side/laughs.jpg", "ok", warning="unsafe XML refused"), 41)
    (root / "side/laughs.xml").write_text('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                                          '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><annotation>&b;</annotation>')
    _photo(add("side/binary.jpg", "ok", warning="not UTF-8"), 42)
    (root / "side/binary.jpg.json").write_bytes(b"\xff\xfe\x00garbage\x80")
    _photo(add("side/nan.jpg", "ok", warning="not finite"), 43)
    (root / "side/nan.jpg.json").write_text('{"boxes": [[0, 0, NaN, Infinity]]}')
    _photo(add("side/mask.jpg", "ok", warning="mask is"), 44)
    Image.new("L", (5, 5), 255).save(root / "side/mask.mask.png")
    _photo(add("side/hostile.jpg", "ok"), 45)
    (root / "side/hostile.jpg.json").write_text(json.dumps({
        "label": HOSTILE_LABEL + "\u0000", "tags": {"camera": HOSTILE_TAG, "site": "=HYPERLINK(\"https://evil.example\")"},
        "boxes": [[0, 0, 1, 1]]}))
    _photo(add("side/badorient.jpg", "ok"), 46)
    _exif_jpeg(root / "side/badorient.jpg", 46, "2024:01:01 00:00:00", orientation=9)
    corpus.warned["side/badorient.jpg"] = "invalid EXIF orientation"

    # -- sidecars that lead out of the root or are not regular files
    (root / "links").mkdir()
    _photo(add("links/classes_yolo.jpg", "ok", warning="outside the source root"), 50)
    (root / "links/classes_yolo.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "links/classes.txt").symlink_to(outside / "classes.txt")
    _photo(add("links/env.jpg", "ok", warning="outside the source root"), 51)
    (root / "links/env.txt").symlink_to("/proc/self/environ")
    _photo(add("links/passwd.jpg", "ok", warning="outside the source root"), 52)
    (root / "links/passwd.jpg.json").symlink_to(outside / "secret.json")
    _photo(add("links/zero.jpg", "ok", warning="outside the source root"), 53)
    (root / "links/zero.xml").symlink_to("/dev/zero")
    _photo(add("links/fifo_side.jpg", "ok", warning="FIFO"), 54)
    os.mkfifo(root / "links/fifo_side.jpg.json")
    (root / "links/outdir").symlink_to(outside, target_is_directory=True)  # never scanned
    (root / "links/outimage.jpg").symlink_to(outside / "outside.jpg")  # never scanned
    (root / "links/devzero.jpg").symlink_to("/dev/zero")  # never scanned
    os.mkfifo(root / "links/fifo_at_scan.jpg")  # never scanned (not a regular file)

    # -- broken images: each an error naming the reason, the batch goes on
    (root / "broken").mkdir()
    add("broken/empty.jpg", "error", "empty file").write_bytes(b"")
    add("broken/text.jpg", "error", "not an allowed image format").write_text("hello, not an image\n")
    full = io.BytesIO()
    Image.fromarray(_rng(60).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(full, format="JPEG")
    add("broken/half.jpg", "error", "truncated").write_bytes(full.getvalue()[:3000])
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")
    add("broken/bomb.png", "error", "decompression bomb").write_bytes(bomb.getvalue())
    add("broken/zip.jpg", "error", "not an allowed image format").write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    add("broken/svg.png", "error", "not an allowed image format").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')

    # -- big pictures: more decoded pixels than one batch may hold (max_batch_pixels), all ok
    (root / "big").mkdir()
    for i in range(6):
        gradient = np.linspace(0, 255, 5000, dtype=np.uint8)
        pixels = np.broadcast_to(gradient[None, :, None], (4500, 5000, 3)).copy()
        pixels[i, i] = (i, 7, 7)  # distinct bytes: six images, not one image and five duplicates
        Image.fromarray(pixels).save(add(f"big/huge{i}.png", "ok"), compress_level=1)
    tiny = np.full((3000, 4000, 3), 90, dtype=np.uint8)
    Image.fromarray(tiny).save(add("big/tinybox.jpg", "ok"), quality=70)
    (root / "big/tinybox.jpg.json").write_text(json.dumps({"boxes": [[1990, 1490, 2002, 1502]], "label": "speck"}))

    # -- clocks: mtimes in 1970 and in the year 3000 (no sidecar, no EXIF): processing time, with a warning
    (root / "clock").mkdir()
    _photo(add("clock/epoch.png", "ok", warning="file modification time"), 70, fmt="PNG")
    os.utime(root / "clock/epoch.png", ns=(0, 0))
    _photo(add("clock/far.png", "ok", warning="file modification time"), 71, fmt="PNG")
    far = 32503680000 * 10**9  # 3000-01-01
    os.utime(root / "clock/far.png", ns=(far, far))

    # -- files tampered with after the scan (see tamper_after_scan)
    (root / "later").mkdir()
    _photo(add("later/swapped.jpg", "error", "outside the source root"), 80)
    _photo(add("later/fifo.jpg", "error", "FIFO"), 81)
    _photo(add("later/rewritten.jpg", "error", "content changed"), 82)
    corpus.files = sum(1 for _ in _walk(root))
    return corpus


def _walk(root: Path):  # type: ignore[no-untyped-def]
    for folder, dirs, files in os.walk(root):
        yield from (Path(folder) / f for f in files)
        yield from (Path(folder) / d for d in dirs if (Path(folder) / d).is_symlink())


def tamper_after_scan(corpus: Corpus) -> None:
    """What happens between the scan and the processing: a registered image becomes a link out of the root,
    another a FIFO, a third gets new content (registered anew and processed: expected ``ok``)."""
    root = corpus.root
    (root / "later/swapped.jpg").unlink()
    (root / "later/swapped.jpg").symlink_to(corpus.outside / "outside.jpg")
    (root / "later/fifo.jpg").unlink()
    os.mkfifo(root / "later/fifo.jpg")
    stat = (root / "later/rewritten.jpg").stat()
    _photo(root / "later/rewritten.jpg", 83)
    os.utime(root / "later/rewritten.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only the hash tells


if __name__ == "__main__":
    target = Path(sys.argv[1])
    made = build_corpus(target)
    print(f"{made.files} files under {made.root} ({len(made.expected)} images expected)")  # noqa: T201
