"""Blob reading: a manifest's blobs from storage to blocks of lines, in bounded memory.

Owns the SAS URLs and their renewal (``sas``), the download into spool files with resume
(``download``), the run's spool folder (``spool``), gzip JSON-lines inflation with its
limits (``lines``) and the types a blob reader hands over (``content``). Never sees a
Graph token: a SAS is the only credential here.

May import: the core, ``records``, and of ``service`` only the transport, the URL policy and
the manifest, never ``service.auth`` (``tests/test_structure.py``).
"""

from __future__ import annotations
