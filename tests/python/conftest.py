"""Shared fixtures: the bsim binary under test and a runner that captures its exit code and stderr."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bsim():
    path = os.environ.get("BSIM", str(ROOT / "build" / "apps" / "bsim"))
    if not os.path.exists(path):
        pytest.fail(f"bsim binary not found at {path}: build first (cmake --build build)")
    return path


@pytest.fixture(scope="session")
def run(bsim):
    def _run(*args, check=True, timeout=600):
        p = subprocess.run([bsim, *map(str, args)], capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"bsim {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
        return p
    return _run


@pytest.fixture(scope="session")
def shared_hrtf_dir():
    d = pathlib.Path(os.environ.get("BSIM_SHARED_HRTF_DIR", ROOT.parent / "shared" / "hrtf"))
    return d if d.is_dir() else None
