"""pytest fixture: Beam's Prism runner (Go), built at test time and cached, never committed.

`go install github.com/apache/beam/sdks/v2/go/cmd/prism@v2.77.0` into
~/.cache/mediamon/prism-v2.77.0/ (about 2.5 minutes cold, then instant). Skips with the reason
when Go is missing or the build fails, unless MEDIAMON_REQUIRE_PRISM=1 (CI), which fails instead.
`prism_args(path)` are the Beam options that run a mediamon job on it (LOOPBACK: the Python
workers run inside the launching process).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import apache_beam

PRISM_VERSION = f"v{apache_beam.__version__}"
BUILD_TIMEOUT = 900


def _unavailable(reason: str) -> None:
    if os.environ.get("MEDIAMON_REQUIRE_PRISM") == "1":
        pytest.fail(f"Prism required (MEDIAMON_REQUIRE_PRISM=1) but {reason}")
    pytest.skip(f"Prism not available: {reason}")


def prism_binary() -> Path:
    """The cached binary, built first when missing. Raises RuntimeError with the reason."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "mediamon" / f"prism-{PRISM_VERSION}"
    binary = folder / "prism"
    if binary.is_file():
        return binary
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None)
    if go is None:
        raise RuntimeError("Go is not installed (needed to build Prism)")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([go, "install", f"github.com/apache/beam/sdks/v2/go/cmd/prism@{PRISM_VERSION}"],
                          env={**os.environ, "GOBIN": str(folder)}, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT)
    if done.returncode != 0 or not binary.is_file():
        raise RuntimeError(f"go install prism@{PRISM_VERSION} failed: {done.stderr[-1500:]}")
    return binary


def prism_args(binary: Path) -> list[str]:
    return ["--runner=PrismRunner", f"--prism_location={binary}", "--environment_type=LOOPBACK"]


@pytest.fixture(scope="session")
def prism() -> Path:
    try:
        return prism_binary()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        _unavailable(str(exc))
        raise
