"""Peak memory of ``camwatch run --once`` over the adversarial corpus (tests/support/adversarial.py), measured
the way users run it: a fresh process under ``/usr/bin/time -v``, default model (EfficientNet-Lite0) and
settings, a fresh SQLite database. Prints the peak RSS, the wall time and what became of the images.

    .venv/bin/python benchmarks/adversarial_rss.py [--model SPEC] [--batch-size N]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from tests.support.adversarial import build_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="model spec (default: the settings' default)")
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build_corpus(Path(tmp) / "corpus")
        db = Path(tmp) / "cw.db"
        command = ["/usr/bin/time", "-v", sys.executable, "-m", "worker", "run", "--once", "--source",
                   str(corpus.root), "--db", f"sqlite:///{db}"]
        command += ["--model", args.model] if args.model else []
        command += ["--batch-size", str(args.batch_size)] if args.batch_size else []
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CAMWATCH_CONFIG": str(Path(tmp) / "none.toml")}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:])
            raise SystemExit(f"camwatch run exited with {done.returncode}")
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", done.stderr).group(1)
        engine = create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            statuses = dict(conn.execute(text("SELECT status, count(*) FROM images GROUP BY status")).all())
        engine.dispose()
    allocator = {k: os.environ[k] for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_") if k in os.environ}
    print(f"corpus: {corpus.files} files, {len(corpus.expected)} images expected; allocator settings: "
          f"{allocator or 'none in the environment (the command pins glibc malloc itself: worker/runtime.py)'}")
    print(f"camwatch run --once: peak RSS {peak_kb / 1024:.0f} MiB, wall {wall}, images {statuses}")


if __name__ == "__main__":
    main()
