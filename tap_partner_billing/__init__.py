"""tap-partner-billing: a Singer tap for Microsoft partner billing exports."""

from __future__ import annotations

from importlib import metadata

# The version is written once, in pyproject.toml; this reads it from the installed package
# (as the SDK does for --version and --about), so nothing here can go stale.
try:
    __version__ = metadata.version("tap-partner-billing")
except metadata.PackageNotFoundError:  # a source tree on sys.path without pip install -e
    __version__ = "0+unknown"
