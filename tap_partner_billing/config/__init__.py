"""The settings: declared once, normalised, and checked all together before a run.

Owns the declaration (``settings``, with the SDK's public typing helpers) and the words for
each problem (``problems``).

May import: everything below the run's composition (core, ``records``, ``service``, ``blobs``,
``emission``), for the defaults and rules it states; never ``sync`` or the Singer layer.
"""

from __future__ import annotations
