"""tap-partner-billing: a Singer tap for Microsoft partner billing exports."""

from __future__ import annotations
