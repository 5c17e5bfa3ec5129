"""streamer: a synthetic end-to-end monitor for live video platforms."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamer")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
