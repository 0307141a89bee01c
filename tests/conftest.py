import os
from pathlib import Path

import pytest

# Generated datasets go to a per-session cache, never the user's.
os.environ.setdefault("MATAP_CACHE", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"matap-test-cache-{os.getpid()}"))
os.environ.setdefault("PYTHONWARNINGS", "ignore")


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["MATAP_CACHE"])


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One smoke-preset MA-TAP run shared by the tests that only read it."""
    from matap.cli import main

    run = tmp_path_factory.mktemp("runs") / "smoke"
    assert main(["train", "--config", "smoke", "--out", str(run)]) == 0
    return run
