"""Emission: the ordered output of a partition, and the machinery that writes it.

Owns the partition's events and their ordering rules (``events``), the per-partition
bookkeeping kept in state (``ledger``), the output routes (``output``: SDK, direct, BATCH),
the decode worker processes (``workers``, ``worker_process``), SIGTERM between messages
(``shutdown``) and the run's counters (``summary``).

May import: the core, ``records``, the blob types (``blobs.content``) and the manifest's data
(``service.manifest``). Imports neither Singer nor HTTP, at any depth
(``tests/test_structure.py``).
"""

from __future__ import annotations
