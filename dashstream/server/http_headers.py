"""Request headers read the way HTTP/1.1 writes them, without the e-mail parser.

eventlet's request parser is the standard library's ``BaseHTTPRequestHandler``, which hands
the header block to ``email.parser`` (built for RFC 5322 mail: MIME, defects, payloads).
Under the handshake benchmark that parser was the largest single cost of a WebSocket
upgrade (BENCHMARKS.md S4). HTTP's header grammar is small (RFC 9112 section 5: ``name ":" OWS
value OWS`` per line, nothing else), so this module reads it directly and refuses what
HTTP forbids instead of guessing: a line without a colon, whitespace before the colon, an
empty name, an obsolete folded line (RFC 9112 5.2: a server may reject it with 400), more
than ``MAX_HEADERS`` fields.

``Headers`` answers the questions eventlet's WSGI layer and the standard library ask of
``http.client.HTTPMessage`` (``get``, ``get_all``, ``items``, ``_headers``,
``get_content_type``), nothing more.

``ready_head`` reads a whole request head from bytes already received (a WebSocket handshake
nearly always arrives in one segment), under the same line and size limits as eventlet's
reader; whatever it cannot take as it is (incomplete, over a limit, against a rule) it leaves
to the full reader, which answers it as it always has.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

MAX_HEADERS = 100
# eventlet's limits (wsgi.MAX_REQUEST_LINE, MAX_HEADER_LINE, MAX_TOTAL_HEADER_SIZE): a request
# line or header line of MAX_LINE bytes or more, or header lines over MAX_HEADER_BYTES in all,
# are refused by the full reader.
MAX_LINE = 8192
MAX_HEADER_BYTES = 65536
_SEPARATORS = frozenset(" \t")


class BadHeaders(ValueError):
    """The header block breaks HTTP's grammar; the text is the 400 answer's reason."""


class TooManyHeaders(BadHeaders):
    """More than MAX_HEADERS fields (431)."""


class Headers:
    """Header fields in the order they came, with case-insensitive lookup."""

    __slots__ = ("_headers", "by_name")

    def __init__(self, fields: list[tuple[str, str]] | None = None):
        self._headers: list[tuple[str, str]] = fields or []  # the name eventlet reads
        self.by_name: dict[str, str] = {}  # lowercased name -> the first field's value
        for name, value in reversed(self._headers):
            self.by_name[name.lower()] = value

    def get(self, name: str, default=None):
        """The first field of that name (as ``email.message.Message.get``)."""
        return self.by_name.get(name.lower(), default)

    def get_all(self, name: str, default=None):
        lowered = name.lower()
        if lowered not in self.by_name:
            return default  # the usual answer (Content-Length, Transfer-Encoding): no scan
        found = [value for key, value in self._headers if key.lower() == lowered]
        return found or default

    def __getitem__(self, name: str):
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.by_name

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def keys(self) -> list[str]:
        return [name for name, _ in self._headers]

    def values(self) -> list[str]:
        return [value for _, value in self._headers]

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def get_content_type(self) -> str:
        """The media type, without parameters; ``text/plain`` when absent (what
        ``email.message.Message`` answers, and so what eventlet puts in CONTENT_TYPE)."""
        value = self.get("content-type")
        if not value:
            return "text/plain"
        media = value.split(";", 1)[0].strip().lower()
        return media if media.count("/") == 1 else "text/plain"


def read_headers(readline) -> Headers:
    """Read header lines from ``readline()`` up to the empty line that ends them."""
    fields: list[tuple[str, str]] = []
    while True:
        raw = readline()
        if raw in (b"\r\n", b"\n", b""):
            return Headers(fields)
        if len(fields) >= MAX_HEADERS:
            raise TooManyHeaders(f"Too many headers: more than {MAX_HEADERS} header fields")
        fields.append(_field(raw.decode("iso-8859-1").rstrip("\r\n")))


def _field(line: str) -> tuple[str, str]:
    """(name, value) of one header line (its line end removed), by HTTP's grammar."""
    if line[:1] in _SEPARATORS:
        raise BadHeaders("a folded header line (obsolete line folding is not accepted)")
    name, colon, value = line.partition(":")
    if not colon or not name:
        raise BadHeaders("a header line without a field name and a colon")
    if name[-1] in _SEPARATORS:
        raise BadHeaders("whitespace between a header field name and its colon")
    return name, value.strip(" \t")


class ReadyHead(NamedTuple):
    """A request head found complete in bytes already received."""

    request_line: bytes  # with its line end, as ``readline`` gives it
    headers: Headers
    size: int  # bytes of the head, the empty line that ends it included


def ready_head(data: bytes) -> ReadyHead | None:
    """The request line and header fields at the start of ``data`` if they are all there and
    ``read_headers`` after eventlet's line reader would take them as they are: lines split
    where ``readline`` splits them (at LF), the head ending at the first empty line (CRLF or
    a bare LF), no line of MAX_LINE bytes or more, header lines of MAX_HEADER_BYTES at most
    and MAX_HEADERS fields at most, each by HTTP's grammar. None otherwise."""
    end = data.find(b"\n\r\n")  # the LF that ends the last header line
    bare = data.find(b"\n\n", 0, end + 1 if end >= 0 else len(data))
    if bare >= 0:
        end, size = bare, bare + 2
    elif end >= 0:
        size = end + 3
    else:
        return None  # not all there yet
    # Latin-1 maps each byte to one character: lengths are the same in bytes and text.
    lines = data[:end].decode("iso-8859-1").split("\n")  # the request line, then the header lines
    first = len(lines[0])
    if len(lines) > MAX_HEADERS + 1 or max(map(len, lines)) > MAX_LINE - 2 or size - first - 1 > MAX_HEADER_BYTES:
        return None
    try:
        fields = [_field(line.rstrip("\r\n")) for line in lines[1:]]
    except BadHeaders:
        return None
    return ReadyHead(data[:first + 1], Headers(fields), size)


# A header's environ key by its name as sent (``environ_key``): a handshake's dozen names,
# the same from every browser, were each replaced, upper-cased and joined again per request.
# Names are the client's to choose, so the memo is bounded: past its size, a name not in it
# is worked out every time.
ENVIRON_KEYS: dict[str, str] = {}
ENVIRON_KEYS_KEPT = 256


def environ_key(name: str) -> str:
    """The WSGI environ key eventlet gives a header: ``HTTP_`` and the name upper-cased with
    ``-`` as ``_``; ``""`` for one it leaves out: a name with ``_`` (it would be confused with
    one with ``-``), Content-Type and Content-Length (they are CONTENT_TYPE and CONTENT_LENGTH).
    Kept in ``ENVIRON_KEYS`` while it has room."""
    key = "" if "_" in name else "HTTP_" + name.replace("-", "_").upper()
    if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
        key = ""
    if len(ENVIRON_KEYS) < ENVIRON_KEYS_KEPT:
        ENVIRON_KEYS[name] = key
    return key


class BadFraming(ValueError):
    """The request's body framing cannot be trusted; ``status`` is the answer."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


_DIGITS = frozenset("0123456789")


def body_framing(headers: Headers) -> Headers:
    """Check how the body is delimited (RFC 9112 section 6): every ``Content-Length``
    value (repeated lines, or a comma list) must be the same run of digits, and is then
    kept as one field; ``Transfer-Encoding`` may only be ``chunked``. Two different
    lengths mean two parties would read two different bodies (request smuggling)."""
    lengths = headers.get_all("Content-Length") or []
    if lengths:
        values = {value.strip(" \t") for line in lengths for value in line.split(",")}
        if len(values) != 1:
            raise BadFraming(400, "two different Content-Length values")
        value = values.pop()
        if not 1 <= len(value) <= 18 or not _DIGITS.issuperset(value):
            raise BadFraming(400, "Content-Length must be a number of bytes")
        if len(lengths) > 1 or value != lengths[0]:
            headers = Headers([(name, field) for name, field in headers.items() if name.lower() != "content-length"]
                              + [("Content-Length", value)])
    codings = headers.get_all("Transfer-Encoding")
    if codings is not None and ",".join(codings).strip(" \t").lower() != "chunked":
        raise BadFraming(501, "the only Transfer-Encoding understood is chunked")
    return headers
