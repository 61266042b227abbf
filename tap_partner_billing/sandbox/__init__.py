"""A local stand-in for the Microsoft Graph partner billing service (demo, tests, benchmarks).

Everything it serves is fake ("Contoso Demo …"), on 127.0.0.1 only, over HTTPS signed by a
throwaway certificate authority.
"""

from __future__ import annotations
