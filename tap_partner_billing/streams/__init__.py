"""The Singer streams: they orchestrate, and only they touch the SDK.

Owns the export stream base (``export_stream``, the only adapter between emission's events
and the SDK), the usage and reconciliation streams (``usage``), the ``invoices`` stream
(``invoices``), the route a stream's records take (``routing``) and every use of the SDK's
internals (``sdk_seam``). With ``tap`` and ``cli`` above the package, this is the Singer
layer: the only one that imports the seam.

May import: every layer but the sandbox (``tests/test_structure.py``).
"""

from __future__ import annotations
