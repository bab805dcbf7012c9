"""The installed package, as a user gets it with ``pip install .``: the ``camwatch`` console script runs every
command from a folder outside the repository (migrations, dashboard files and the method catalogue ship
inside the wheel)."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.support import REPO
from tests.support.brokers import redis_stream
from tests.support.browser import free_port, wait_healthy

TINY_FACTORY = '''
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 3))
    return {"model": net, "preprocessing": {"size": [32, 32]}, "class_names": ["a", "b", "c"]}
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Build the wheel from a copy of the sources and install it (no dependencies) into a prefix;
    returns the environment that runs its ``camwatch`` script with the test virtualenv's packages."""
    root = tmp_path_factory.mktemp("pkg")
    src = root / "src"
    for name in ("camwatch", "db", "worker", "dashboard"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(REPO / name, src / name)
    wheels = root / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], check=True,
                   timeout=300, capture_output=True)
    (wheel,) = wheels.glob("camwatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "db/migrations/versions/0001_initial.py" in names and "dashboard/app_pages/image.py" in names
    assert "camwatch/events/image.v1.schema.json" in names  # what validates queue events
    prefix = root / "prefix"
    subprocess.run([*pip, "install", "--no-deps", "--prefix", str(prefix), str(wheel)], check=True, timeout=300,
                   capture_output=True)
    purelib = sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)})
    return {**os.environ, "PYTHONPATH": purelib, "PATH": f"{prefix / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "CAMWATCH_CONFIG": str(root / "absent.toml")}


def _camwatch(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["camwatch", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_console_script_runs_every_command_outside_the_repository(installed: dict[str, str],
                                                                     tmp_path: Path) -> None:
    help_text = _camwatch(installed, tmp_path, "--help")
    assert help_text.returncode == 0, help_text.stderr
    for command in ("run", "explain", "export", "drift", "dashboard", "submit"):
        assert command in help_text.stdout
    run_help = _camwatch(installed, tmp_path, "run", "--help").stdout
    assert "gradcam++" in run_help and "letterbox" in run_help  # from the catalogue and the conventions

    feed = tmp_path / "feed"
    feed.mkdir()
    for i, colour in enumerate(((200, 30, 30), (30, 200, 30), (30, 30, 200))):
        Image.new("RGB", (64, 48), colour).save(feed / f"{i}.jpg")
    (tmp_path / "tiny.py").write_text(TINY_FACTORY)
    model = f"python:{tmp_path / 'tiny.py'}:build"
    db = f"sqlite:///{tmp_path / 'cw.db'}"
    run = _camwatch(installed, tmp_path, "run", "--source", str(feed), "--db", db, "--once", "--model", model,
                    "--stable-seconds", "0")
    assert run.returncode == 0, run.stderr
    export = _camwatch(installed, tmp_path, "export", "--db", db, "--format", "csv", "--out", "out.csv")
    assert export.returncode == 0, export.stderr
    rows = list(csv.DictReader((tmp_path / "out.csv").open(encoding="utf-8")))
    assert sorted(r["status"] for r in rows) == ["ok", "ok", "ok"]
    assert all(r["class_name"] in {"a", "b", "c"} for r in rows)
    explained = _camwatch(installed, tmp_path, "explain", str(feed / "0.jpg"), "--model", model, "--out", "ex")
    assert explained.returncode == 0, explained.stderr
    assert (tmp_path / "ex" / "0.jpg.cam.json").is_file() and (tmp_path / "ex" / "0.jpg.cam.png").is_file()
    drift = _camwatch(installed, tmp_path, "drift", "--db", db)
    assert drift.returncode == 0 and "not enough images for the reference yet" in drift.stdout
    with redis_stream() as s:  # the event schema is read from the installed package
        submitted = _camwatch(installed, tmp_path, "submit", str(feed / "0.jpg"), "--inline", "--to", s.url)
        assert submitted.returncode == 0, submitted.stderr
        assert s.client.xlen(s.stream) == 1


def test_the_dashboard_command_binds_to_localhost_by_default(installed: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        server = subprocess.Popen(["camwatch", "dashboard", "--db", f"sqlite:///{tmp_path / 'cw.db'}",
                                   "--port", str(port)], cwd=tmp_path, env=installed, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(port, server, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
            assert response.status == 200
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local = [line.split()[3] for line in listening.splitlines()]  # State Recv-Q Send-Q Local Peer
        assert local == [f"127.0.0.1:{port}"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
