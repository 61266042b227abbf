"""The service clients: everything that talks to Microsoft, and how.

Owns Entra tokens (``auth``), the one retry and classification policy for every request
(``transport``), reading answers and error bodies (``responses``), where a credential may go
and where data may come from (``url_policy``), the export state machine (``export``) and the
scheduler that runs every export of a run ahead (``export_jobs``, ``export_resume``,
``scheduler``), the manifest (``manifest``), the Partner Center invoice list
(``partner_center``) and what ``--test`` proves (``checks``). No Singer: the state machine
takes its clock and sleep as parameters.

May import: the core (``errors``, ``redact``, ``dates``) and ``records`` (field conversions).
Nothing above it; ``tests/test_structure.py`` checks the direction.
"""

from __future__ import annotations
