"""The worker's runtime settings (worker/runtime.py): applied by the commands at start, never by an import.

The allocator's effect is observed independently of the code under test: glibc's ``mallinfo2().hblks``
counts the chunks currently served by ``mmap``; a 64 MiB ``malloc`` adds one under glibc's defaults and
none once ``mallopt(M_MMAP_MAX, 0)`` is in force. Each check runs in a fresh interpreter, since the
settings are process-wide.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker import runtime

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import ctypes
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def mmapped_by_big_malloc():
    before = libc.mallinfo2().hblks
    p = libc.malloc(64 << 20)
    after = libc.mallinfo2().hblks
    libc.free(p)
    return after - before
"""

needs_glibc = pytest.mark.skipif(runtime._glibc() is None, reason="glibc's mallinfo2 is the observer")


def run_python(code: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False, env=_clean_env())


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "CAMWATCH_"))}


@needs_glibc
def test_importing_the_worker_applies_nothing() -> None:
    code = PROBE + """
import json, logging, sys
logging.basicConfig(level=logging.INFO)
import worker, worker.cli, worker.runtime, worker.__main__
import worker.commands.run, worker.commands.explain, worker.cam.factory, worker.cam.accel
import worker.service.worker, dashboard.live
import torch
print(json.dumps({"mmapped": mmapped_by_big_malloc(), "threads": torch.get_num_threads()}))
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    plain = run_python("import torch; print(torch.get_num_threads())")
    assert report["mmapped"] == 1  # glibc's default: a 64 MiB block is mmapped
    assert report["threads"] == int(plain.stdout.strip())  # torch's own default, untouched
    assert "runtime:" not in done.stderr


@needs_glibc
def test_configure_runtime_pins_the_allocator_and_sets_threads() -> None:
    code = PROBE + """
import json, sys
from camwatch.settings import RuntimeSettings
from worker.runtime import configure_runtime
first = mmapped_by_big_malloc()
report = configure_runtime(RuntimeSettings(threads=1, allocator=sys.argv[1]))
import torch
print(json.dumps({"first": first, "then": mmapped_by_big_malloc(), "threads": torch.get_num_threads(),
                  "mmap_max": report.allocator.mmap_max_result, "trim": report.allocator.trim_threshold_result,
                  "before_torch": report.before_torch}))
"""
    pinned = json.loads(run_python(code, "pinned").stdout.strip().splitlines()[-1])
    assert pinned == {"first": 1, "then": 0, "threads": 1, "mmap_max": 1, "trim": 1, "before_torch": True}
    default = json.loads(run_python(code, "default").stdout.strip().splitlines()[-1])
    assert default["then"] == 1 and default["mmap_max"] is None and default["threads"] == 1


@needs_glibc
def test_the_run_command_applies_them_first(tmp_path: Path) -> None:
    """The README's command, with no allocator variables in its environment, logs what it applied before
    the model is loaded; mallopt returned 1 (success) for both parameters."""
    (tmp_path / "src").mkdir()
    done = subprocess.run([sys.executable, "-m", "worker", "run", "--source", str(tmp_path / "src"), "--db",
                           f"sqlite:///{tmp_path}/x.db", "--once", "--threads", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False, env=_clean_env())
    assert done.returncode == 0, done.stderr
    events = [json.loads(line)["event"] for line in done.stderr.splitlines() if line.startswith("{")]
    applied = [i for i, e in enumerate(events) if e.startswith("runtime:")]
    assert len(applied) == 1, events
    assert events[applied[0]] == ("runtime: glibc mallopt(M_MMAP_MAX=0) -> 1, mallopt(M_TRIM_THRESHOLD="
                                  "2147483647) -> 1; torch threads 1; BLAS threads 1; before torch was imported")
    engine = [i for i, e in enumerate(events) if e.startswith("CAM engine:")]
    assert engine and engine[0] > applied[0]
    # Once the model is loaded, what is alive leaves the garbage collector's walks (torch and the model:
    # hundreds of thousands of objects).
    frozen = [e for e in events[engine[0]:] if e.endswith("frozen out of garbage collection")]
    assert len(frozen) == 1 and int(frozen[0].split()[2]) > 100_000


def test_without_glibc_it_is_a_logged_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_glibc", lambda: None)
    report = runtime.pin_allocator(1 << 30)
    assert not report.applied and report.mmap_max_result is None
    assert "not glibc" in report.reason


def test_threads_flag_and_settings() -> None:
    from camwatch.settings import load_settings
    from worker.cli import build_parser
    from worker.commands.common import runtime_override

    args = build_parser().parse_args(["explain", "x.jpg", "--threads", "3"])
    assert load_settings(runtime=runtime_override(args)).runtime.threads == 3
    args = build_parser().parse_args(["explain", "x.jpg"])
    assert load_settings(runtime=runtime_override(args)).runtime.threads is None
