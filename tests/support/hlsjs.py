"""hls.js, a player nobody here wrote, for the browser tests: installed from the npm
registry with Debian's `npm`, pinned to one exact version, into a cache directory outside
the repository (never committed), once per machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HLSJS_VERSION = "1.5.20"


def hlsjs_script() -> Path:
    """The path of hls.min.js, installed first if needed; fails (never skips) without npm."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    prefix = base / "streamer-tests" / f"hlsjs-{HLSJS_VERSION}"
    script = prefix / "node_modules" / "hls.js" / "dist" / "hls.min.js"
    if script.exists():
        return script
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is missing: scripts/install-deps.sh test installs it")
    subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--no-save",
            f"hls.js@{HLSJS_VERSION}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return script
