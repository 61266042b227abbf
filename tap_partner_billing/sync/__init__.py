"""One run's composition: what the streams of a run share, and what they will ask for.

Owns the shared objects of a run (``shared``), the clients built from the settings
(``services``), what the invoice list means for a run (``invoice_index``) and which
documents a run exports (``planner``). No Singer.

May import: every layer below the Singer layer (``tests/test_structure.py``).
"""

from __future__ import annotations
