"""Records: what a line means and how it becomes a typed row.

Owns the field tables (``fields``), the exact decoding of one JSON line (``decode``), the row
layout, blocks and their encoding (``rows``), and the export streams' JSON schema
(``schemas``). Pure functions over plain data: money never passes through float.

May import: only the core. Imports neither Singer nor HTTP, at any depth
(``tests/test_structure.py``).
"""

from __future__ import annotations
