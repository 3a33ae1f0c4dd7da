"""A sans-I/O reader of HTTP/1.1 responses to POST requests: bytes in, status, headers and a
bounded prefix of the body out. Receivers are untrusted, so everything it holds has a cap: at most
`body_limit` body bytes are kept and the rest is dropped as it passes, and only an incomplete head,
chunk-size line or trailer line is ever buffered, each under a hard limit. Whatever a receiver
sends (a 2 GB body, an endless chunked stream, endless headers), the parser holds a few tens of
KiB at most, and says ENOUGH as soon as nothing it keeps can change any more."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import cast

NEED_DATA = 0   # feed more (or the close, for a body that runs until it)
ENOUGH = 1      # status, headers and kept body are final; the rest of the body is only being dropped
DONE = 2        # the response is complete; `keep_alive` says whether the connection can carry another

# States, in an order that lets the hot checks be comparisons: body states first.
_LENGTH, _CHUNK_DATA, _UNTIL_CLOSE, _HEAD, _CHUNK_SIZE, _DONE, _CHUNK_END, _TRAILER = range(8)

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_TEXT = rb"[\t\x20-\x7e\x80-\xff]"          # field-content: VCHAR, SP, HTAB, obs-text; no CTL, no DEL
# One pass over the head validates it all (strict status line, token names, no bare CR or LF, no
# control bytes), which is cheaper than any per-line check in Python.
_HEAD_RE = re.compile(rb"HTTP/1\.[01] [1-9][0-9][0-9](?: " + _TEXT + rb"*+)?+"
                      rb"(?:\r\n" + _TOKEN + rb"++:" + _TEXT + rb"*+)*+")      # possessive: no backtracking
_STATUS_RE = re.compile(rb"HTTP/1\.[01] [1-9][0-9][0-9](?: " + _TEXT + rb"*)?")
_FIELD_RE = re.compile(_TOKEN + rb"+:" + _TEXT + rb"*")
_FRAMING_RE = re.compile(rb"\r\n(content-length|transfer-encoding|connection|retry-after):([^\r]*)", re.IGNORECASE)
_FOLD_RE = re.compile(rb"\r\n[ \t]+")
_CHUNK_RE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;" + _TEXT + rb"*)?")    # size, then extensions
_OWS = b" \t"
_HEX = b"0123456789abcdefABCDEF"


class MalformedResponse(ValueError):
    """The receiver's bytes are not an HTTP/1.1 response we can frame (or overran a limit)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What a receiver may make the parser buffer or count. The head cap also bounds trailers."""

    max_head: int = 65536          # status line + headers, and separately the trailer section
    max_headers: int = 100         # header lines (and trailer lines)
    max_line: int = 8192           # one header or trailer line
    max_chunk_line: int = 1024     # one chunk-size line, extensions included
    max_interim: int = 16          # 1xx responses before the final one
    small_head: int = field(init=False)   # a head no longer than this cannot overrun a count or line limit

    def __post_init__(self) -> None:
        object.__setattr__(self, "small_head", min(4 * self.max_headers, self.max_line))


DEFAULT_LIMITS = Limits()


class ResponseParser:
    """One response. `feed()` returns NEED_DATA, ENOUGH or DONE; `feed_eof()` reports the close.
    After the head: `status`, `keep_alive`, `retry_after`; as the body passes: `body` (at most
    `body_limit` bytes), `discarded` (body bytes dropped), `stray` (bytes after the response)."""

    __slots__ = ("_buf", "_remaining", "_scan", "_state", "_trailer", "_trailers", "body", "body_limit", "discarded",
                 "head", "interim", "keep_alive", "limits", "retry_after", "status", "stray")

    def __init__(self, body_limit: int = 4096, limits: Limits = DEFAULT_LIMITS) -> None:
        self.body_limit = body_limit
        self.limits = limits
        self.status = 0
        self.head = b""             # the final response's head (status line and fields), unfolded
        self.keep_alive = False
        self.retry_after: str | None = None
        self.body = b""
        self.discarded = 0
        self.stray = 0
        self.interim = 0
        self._state = _HEAD
        self._buf: bytes | bytearray = b""   # a bytearray once something has to wait for more bytes
        self._scan = 0              # where the search for an incomplete line's end resumes in _buf
        self._remaining = 0         # body or chunk bytes still to come
        self._trailer = 0           # trailer bytes seen (lines count as their length + 2)
        self._trailers = 0          # trailer lines seen

    # -- results -----------------------------------------------------------------------------------
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The final response's header fields as (lowercased name, value), in order."""
        out = []
        for line in self.head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            out.append((name.lower(), value.strip(_OWS)))
        return out

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete head or framing line (never body bytes)."""
        return len(self._buf)

    # -- input -------------------------------------------------------------------------------------
    def feed_eof(self) -> bool:
        """The connection closed: True when the response is complete (a body read until close
        ends here), False when the close cut it short."""
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
        return self._state == _DONE

    def feed(self, data: bytes) -> int:
        """Consume `data`. Raises MalformedResponse for bytes that cannot be an HTTP/1.1 response
        or that overrun a limit."""
        buf = self._buf
        view: bytes | bytearray = data
        if buf:                        # an incomplete line is pending: search on from where it stopped
            buf += data                # in place: a non-empty _buf is always a bytearray
            view = buf
            scan, self._scan = self._scan, 0
        else:
            scan = 0
        pos, n = 0, len(view)
        while True:
            state = self._state
            if state <= _UNTIL_CLOSE:  # body bytes: keep up to the limit, count the rest, hold none
                avail = n - pos
                rem = avail if state == _UNTIL_CLOSE else self._remaining
                take = avail if avail < rem else rem
                if take:
                    room = self.body_limit - len(self.body)
                    if room >= take:
                        self.body += view[pos:pos + take]
                    elif room > 0:
                        self.body += view[pos:pos + room]
                        self.discarded += take - room
                    else:
                        self.discarded += take
                    pos += take
                if state == _UNTIL_CLOSE:
                    break
                rem -= take
                self._remaining = rem
                if rem:
                    break
                if state == _LENGTH:
                    self._state = _DONE
                    if pos == n and view is data:
                        return DONE    # the common end: the response and the bytes end together
                elif n - pos >= 2 and view[pos] == 13 and view[pos + 1] == 10:
                    pos += 2
                    self._state = _CHUNK_SIZE
                else:
                    self._state = _CHUNK_END
            elif state == _HEAD:
                end = view.find(b"\r\n\r\n", scan - 3 if scan > 3 else pos)
                if end < 0:
                    if n - pos > self.limits.max_head:
                        raise MalformedResponse(f"response head larger than {self.limits.max_head} bytes")
                    break
                if end - pos > self.limits.max_head:
                    raise MalformedResponse(f"response head larger than {self.limits.max_head} bytes")
                self._head(view[pos:end] if view is data else bytes(view[pos:end]))
                pos = end + 4
                scan = 0
            elif state == _CHUNK_SIZE:
                end = view.find(b"\r\n", scan - 1 if scan > 1 else pos)
                scan = 0
                limit = self.limits.max_chunk_line
                if end < 0:
                    if n - pos > limit:
                        raise MalformedResponse(f"chunk-size line longer than {limit} bytes")
                    break
                if end - pos > limit:
                    raise MalformedResponse(f"chunk-size line longer than {limit} bytes")
                line = view[pos:end]
                if 0 < len(line) <= 16 and not line.strip(_HEX):
                    size = int(line, 16)
                else:                  # extensions or whitespace: the strict, slower check
                    match = _CHUNK_RE.fullmatch(line)
                    if match is None:
                        raise MalformedResponse(f"bad chunk-size line {bytes(line[:40])!r}")
                    size = int(match.group(1), 16)
                pos = end + 2
                if size:
                    self._remaining = size
                    self._state = _CHUNK_DATA
                else:
                    self._state = _TRAILER
            elif state == _DONE:
                if pos < n:            # a second response nobody asked for: the connection is not reused
                    self.stray += n - pos
                    self.keep_alive = False
                    pos = n
                break
            elif state == _CHUNK_END:
                scan = 0
                if n - pos < 2:
                    if pos < n and view[pos] != 13:
                        raise MalformedResponse("chunk data not followed by CRLF")
                    break
                if view[pos] != 13 or view[pos + 1] != 10:
                    raise MalformedResponse("chunk data not followed by CRLF")
                pos += 2
                self._state = _CHUNK_SIZE
            else:                      # _TRAILER: field lines, then an empty line
                end = view.find(b"\r\n", scan - 1 if scan > 1 else pos)
                scan = 0
                if end < 0:
                    self._count_trailer(n - pos, False)
                    break
                if end == pos:
                    self._state = _DONE
                else:
                    self._count_trailer(end - pos, True)
                    if _FIELD_RE.fullmatch(view, pos, end) is None:
                        raise MalformedResponse(f"bad trailer line {bytes(view[pos:end])[:80]!r}")
                pos = end + 2
        if pos < n:                    # an incomplete line of framing: keep it, search on from its end
            if view is buf:
                del cast(bytearray, buf)[:pos]
            else:
                self._buf = buf = bytearray(view[pos:])
            self._scan = len(buf)
        elif view is buf:
            self._buf = b""
        state = self._state
        if state == _DONE:
            return DONE
        if self.discarded or (state <= _CHUNK_DATA and len(self.body) >= self.body_limit):
            return ENOUGH               # more body is coming, and none of it would be kept
        return NEED_DATA

    # -- framing -----------------------------------------------------------------------------------
    def _head(self, head: bytes) -> None:
        limits = self.limits
        if _HEAD_RE.fullmatch(head) is None:
            head = self._unfold_or_explain(head)
        size = len(head)
        if size > limits.small_head:    # a field line is at least 4 bytes (CRLF, name, colon)
            if size > limits.max_line and max(map(len, head.split(b"\r\n"))) > limits.max_line:
                raise MalformedResponse(f"header line longer than {limits.max_line} bytes")
            if head.count(b"\r\n") > limits.max_headers:
                raise MalformedResponse(f"more than {limits.max_headers} header fields")
        status = int(head[9:12])
        if status < 200:
            if status == 101:
                raise MalformedResponse("101 Switching Protocols to a request that asked for no upgrade")
            self.interim += 1
            if self.interim > limits.max_interim:
                raise MalformedResponse(f"more than {limits.max_interim} interim (1xx) responses")
            return
        self.status = status
        self.head = head
        http11 = head[7] == 49
        keep_alive = http11             # HTTP/1.1 keeps the connection unless told otherwise
        length = -1
        codings = b""
        for name, value in _FRAMING_RE.findall(head):
            value = value.strip(_OWS)
            kind = len(name)            # the four names differ in length; the regex matched one
            if kind == 14:              # Content-Length
                if length < 0 and value.isdigit() and len(value) <= 18:
                    length = int(value)
                else:
                    length = _content_length(value, length)
            elif kind == 10:            # Connection
                for token in value.lower().split(b","):
                    token = token.strip(_OWS)
                    if token == b"close":
                        keep_alive = False
                    elif token == b"keep-alive" and not http11:
                        keep_alive = True
            elif kind == 17:            # Transfer-Encoding
                codings = value if not codings else codings + b"," + value
            elif self.retry_after is None:
                self.retry_after = value.decode("latin-1")
        if status == 204 or status == 304:
            self._state = _DONE         # never a body, whatever the fields say
        elif codings:
            if length >= 0:
                raise MalformedResponse("both Transfer-Encoding and Content-Length")
            coding_list = [c.strip(_OWS).lower() for c in codings.split(b",")]
            if not all(coding_list):
                raise MalformedResponse(f"bad Transfer-Encoding {codings[:80]!r}")
            if coding_list[-1] == b"chunked":
                if b"chunked" in coding_list[:-1]:
                    raise MalformedResponse("chunked applied more than once")
                self._state = _CHUNK_SIZE
            else:                       # chunked not last: the body runs until the close
                keep_alive = False
                self._state = _UNTIL_CLOSE
        elif length > 0:
            self._remaining = length
            self._state = _LENGTH
        elif length == 0:
            self._state = _DONE
        else:
            keep_alive = False
            self._state = _UNTIL_CLOSE
        self.keep_alive = keep_alive

    def _unfold_or_explain(self, head: bytes) -> bytes:
        """The slow path: join obsolete line folding (RFC 9112 5.2) and retry, or say what is wrong."""
        first = _FOLD_RE.search(head)
        if first is not None and first.start() != head.find(b"\r\n"):   # folding the status line is refused
            unfolded = _FOLD_RE.sub(b" ", head)
            if _HEAD_RE.fullmatch(unfolded) is not None:
                return unfolded
            head = unfolded
        lines = head.split(b"\r\n")
        if _STATUS_RE.fullmatch(lines[0]) is None:
            raise MalformedResponse(f"bad status line {lines[0][:80]!r}")
        for line in lines[1:]:
            if _FIELD_RE.fullmatch(line) is None:
                raise MalformedResponse(f"bad header line {line[:80]!r}")
        raise MalformedResponse("bare CR or LF in the response head")

    def _count_trailer(self, size: int, complete: bool) -> None:
        """Hold a trailer line (complete or still arriving) to the limits; trailers are checked,
        then dropped."""
        limits = self.limits
        if size > limits.max_line:
            raise MalformedResponse(f"trailer line longer than {limits.max_line} bytes")
        if self._trailer + size > limits.max_head:
            raise MalformedResponse(f"trailer section larger than {limits.max_head} bytes")
        if complete:
            self._trailer += size + 2
            self._trailers += 1
            if self._trailers > limits.max_headers:
                raise MalformedResponse(f"more than {limits.max_headers} trailer fields")


def _content_length(value: bytes, seen: int) -> int:
    """The length a Content-Length value gives: digits only; a list of equal values (or repeated
    fields) counts once, different ones are refused."""
    if value.isdigit() and len(value) <= 18:
        length = int(value)
    else:
        parts = {p.strip(_OWS) for p in value.split(b",")}
        if len(parts) != 1:
            raise MalformedResponse(f"conflicting Content-Length {value[:80]!r}")
        only = parts.pop()
        if not only.isdigit() or len(only) > 18:
            raise MalformedResponse(f"bad Content-Length {value[:80]!r}")
        length = int(only)
    if seen >= 0 and seen != length:
        raise MalformedResponse("conflicting Content-Length fields")
    return length
