"""Consumer slots: concurrent processes of a host never share a name, a restarted one gets its name back."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO
from tests.support.brokers import unique
from worker.sources.queue.slots import Slot, host_name


def test_slots_are_exclusive_and_the_lowest_free_one_is_taken_again() -> None:
    key = unique("queue")
    first, second = Slot(key), Slot(key)
    try:
        assert (first.number, second.number) == (0, 1) and first.name == f"{host_name()}-0"
        first.release()
        again = Slot(key)
        assert again.number == 0  # the slot of a stopped consumer is free again
        again.release()
        other = Slot(unique("queue"))
        assert other.number == 0  # each queue has its own slots
        other.release()
    finally:
        second.release()


def test_a_killed_process_frees_its_slot() -> None:
    key = unique("queue")
    code = (f"import os; from worker.sources.queue.slots import Slot; s = Slot({key!r}); print(s.number, flush=True); "
            "os.kill(os.getpid(), 9)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0" and out.returncode == -9
    slot = Slot(key)
    try:
        assert slot.number == 0  # the kernel dropped the dead process's lock
    finally:
        slot.release()
