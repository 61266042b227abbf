"""A local stand-in for the Microsoft Graph partner billing service (demo, tests, benchmarks).

Everything it serves is fake ("Contoso Demo …"), on 127.0.0.1 only, over HTTPS signed by a
throwaway certificate authority.

May import: nothing of the tap, and nothing of the tap imports it: it spells Microsoft's
scopes, paths, headers and field names itself, so a wrong literal in the tap meets the
sandbox's refusal instead of agreeing with itself (``tests/test_structure.py``).
"""

from __future__ import annotations
