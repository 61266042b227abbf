r"""One URL policy: where a credential may go and where data may come from.

Every URL the tap sends a bearer token or a client secret to, and every blob URL it fetches,
passes :meth:`UrlPolicy.check` twice: when it arrives (a ``Location`` header, a manifest link,
Partner Center's next link, a saved state) and again in :class:`CheckedSession.send`, on the
prepared URL exactly as requests hands it to its transport, *before* any credential is
attached. The check reads the URL with both parsers that take part in sending it — urllib3's
``parse_url`` (which requests prepares URLs with) and the standard library's ``urlsplit``
(which requests' adapter picks the connection pool with) — and accepts it only when both see
https, no userinfo, and the configured host and port. A string that two parsers read
differently (``https://evil.example\@graph.microsoft.com``) is refused, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from tap_partner_billing import __version__
from tap_partner_billing.errors import UrlPolicyError

if TYPE_CHECKING:
    from collections.abc import Callable

HTTPS_PORT = 443
REQUEST_TIMEOUT_SECONDS = (30.0, 300.0)  # (connect, read): every request, MSAL's included
# Control characters, whitespace and backslash: parsers disagree about all of them.
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class _Parsed:
    host: str
    port: int
    path: str


def _read(url: str) -> _Parsed:
    """Parse ``url`` with both parsers; raise unless they agree on an https origin.

    Raises:
        UrlPolicyError: Not https, userinfo, unsafe characters, or the parsers disagree.
    """
    if not url:
        raise UrlPolicyError("not a URL")
    if _UNSAFE.search(url):
        raise UrlPolicyError("it holds whitespace, a control character or a backslash")
    try:
        lib = parse_url(url)
        std = urlsplit(url)
        std_port = std.port
    except (LocationParseError, ValueError):
        raise UrlPolicyError("it cannot be parsed") from None
    if not std.netloc.isascii() or not (lib.host or "").isascii():
        raise UrlPolicyError("its host is not ASCII")  # requests would IDNA-encode it
    if (lib.scheme or "").lower() != "https" or std.scheme.lower() != "https":
        raise UrlPolicyError("it is not https")
    if lib.auth is not None or "@" in std.netloc:
        raise UrlPolicyError("it carries userinfo (user@host)")
    lib_host = (lib.host or "").lower().strip("[]")
    std_host = (std.hostname or "").lower()
    lib_port = lib.port or HTTPS_PORT
    port = std_port or HTTPS_PORT
    if not lib_host or (lib_host, lib_port) != (std_host, port):
        raise UrlPolicyError("its host is read differently by the HTTP libraries")
    return _Parsed(lib_host, port, std.path)


def _read_base(url: str) -> _Parsed:
    """A base URL read as :func:`_read` does, refused with a query, fragment or dot segment."""
    parsed = _read(url)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise UrlPolicyError("it has a query or fragment")
    if _has_dot_segment(parsed.path):
        raise UrlPolicyError("its path has . or .. segments")
    return parsed


def _readable(url: str) -> tuple[SplitResult, str, str] | None:
    """``url``'s parts, host and ``:port`` (empty if none); None when Python cannot read it."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    return (parts, host, f":{port}" if port else "") if host else None


def describe(url: str) -> str:
    """``url`` without userinfo, query and fragment, for messages (at most 120 characters)."""
    readable = _readable(url)
    if readable is None:
        return repr(url.split("?", 1)[0].rsplit("@", 1)[-1][:120])
    parts, host, port = readable
    return repr(f"{parts.scheme}://{host}{port}{parts.path}"[:120])


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, for messages: no userinfo, path or query."""
    readable = _readable(url)
    if readable is None:
        return "an unreadable URL"
    parts, host, port = readable
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}"[:120]


def _has_dot_segment(path: str) -> bool:
    return any(segment in {".", ".."} for segment in path.split("/"))


@dataclass(frozen=True)
class UrlPolicy:
    """The one origin (and, for blobs, the folder) a client may talk to."""

    name: str  # what configured it, for messages: "graph_url", "manifest rootDirectory"
    host: str  # "" accepts any host (blob storage accounts are named by each manifest)
    port: int
    path_prefix: str = ""  # a blob must lie under rootDirectory's path

    @classmethod
    def for_base(cls, base_url: str, name: str, *, folder: bool = False) -> UrlPolicy:
        """The policy of a configured base URL (or, with ``folder``, of a blob root).

        Raises:
            UrlPolicyError: ``base_url`` is no plain https URL (the message names ``name``).
        """
        try:
            parsed = _read_base(base_url)
        except UrlPolicyError as err:
            msg = f"{name} must be an https:// URL, got {describe(base_url)} ({err})"
            raise UrlPolicyError(msg) from None
        prefix = parsed.path.rstrip("/") + "/" if folder else ""
        return cls(name, parsed.host, parsed.port, prefix)

    @classmethod
    def any_https(cls, name: str) -> UrlPolicy:
        """Any https URL without userinfo that both parsers read alike."""
        return cls(name, "", HTTPS_PORT)

    @property
    def origin(self) -> str:
        """``https://host[:port]`` of this policy."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}" + ("" if self.port == HTTPS_PORT else f":{self.port}")

    def check(self, url: str, where: str) -> str:
        """Return ``url`` if it is on this policy's origin (and under its folder).

        Raises:
            UrlPolicyError: Naming ``where`` and the refused URL without its query.
        """
        try:
            parsed = _read(url)
        except UrlPolicyError as err:
            msg = f"{where}: refusing {describe(url)}: {err}"
            raise UrlPolicyError(msg) from None
        if self.host and (parsed.host, parsed.port) != (self.host, self.port):
            msg = (
                f"{where}: refusing {describe(url)}: it is not on the origin of "
                f"{self.name} ({self.origin})"
            )
            raise UrlPolicyError(msg)
        if self.path_prefix and (
            not parsed.path.startswith(self.path_prefix) or _has_dot_segment(parsed.path)
        ):
            msg = f"{where}: refusing {describe(url)}: it is not under {self.name}"
            raise UrlPolicyError(msg)
        return url


class CheckedSession(requests.Session):
    """A session that sends only to URLs its policy accepts, and never follows a redirect.

    The check runs in :meth:`send`, on the prepared request, and the ``Authorization``
    header (when the session has a token source) is attached only after it: a token is never
    a session default that could go along with any request.
    """

    def __init__(
        self, policy: UrlPolicy | None, *, bearer: Callable[[], str] | None = None
    ) -> None:
        super().__init__()
        self.policy = policy
        self._bearer = bearer
        self.headers["User-Agent"] = f"tap-partner-billing/{__version__}"
        self.auth = _no_auth  # keeps requests from reading ~/.netrc

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Check, authorise and send one request; 3xx answers are returned, not followed.

        Raises:
            UrlPolicyError: The URL is off the policy's origin.
        """
        if self.policy is not None:
            self.policy.check(str(request.url), "request")
        if self._bearer is not None:
            request.headers["Authorization"] = f"Bearer {self._bearer()}"
        kwargs["allow_redirects"] = False
        if kwargs.get("timeout") is None:  # MSAL passes timeout=None
            kwargs["timeout"] = REQUEST_TIMEOUT_SECONDS
        return super().send(request, **kwargs)


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def redirect_target(response: requests.Response) -> str:
    """Where a 3xx answer points, without its query: for the error message."""
    location = response.headers.get("Location", "")
    return describe(location) if location else "nowhere"
