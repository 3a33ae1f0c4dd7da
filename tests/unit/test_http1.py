"""The sender's HTTP/1.1 response parser: every framing, fed whole, split at every byte and one
byte at a time; keep-alive rules; the kept-body limit and ENOUGH; every limit a hostile receiver
could push on; malformed input refused with a reason."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.http1 import DONE, ENOUGH, NEED_DATA, Limits, MalformedResponse, ResponseParser


@dataclass(frozen=True)
class Seen:
    state: int
    status: int
    body: bytes
    keep_alive: bool
    retry_after: str | None
    discarded: int
    stray: int


def parse(pieces: list[bytes], limit: int = 4096, eof: bool = False, limits: Limits | None = None) -> Seen:
    p = ResponseParser(limit, limits) if limits else ResponseParser(limit)
    state = NEED_DATA
    for piece in pieces:
        state = p.feed(piece)
        assert p.buffered <= p.limits.max_head + len(piece)
    if eof:
        state = DONE if p.feed_eof() else NEED_DATA
    return Seen(state, p.status, p.body, p.keep_alive, p.retry_after, p.discarded, p.stray)


def every_split(data: bytes, limit: int = 4096, eof: bool = False) -> Seen:
    """Parse `data` whole, in two pieces cut at every position, and byte by byte: all must agree."""
    whole = parse([data], limit, eof)
    for cut in range(len(data) + 1):
        assert parse([data[:cut], data[cut:]], limit, eof) == whole, f"cut at {cut}"
    assert parse([data[i:i + 1] for i in range(len(data))], limit, eof) == whole
    return whole


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;name=\"v\" \r\n world\r\nA \r\n, 10 bytes\r\n0\r\nX-Trailer: 1\r\nY: z\r\n\r\n")


@pytest.mark.parametrize(("data", "eof", "expected"), [
    (b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello", False,
     Seen(DONE, 201, b"hello", True, None, 0, 0)),
    (CHUNKED, False, Seen(DONE, 200, b"hello world, 10 bytes", True, None, 0, 0)),
    (b"HTTP/1.1 503 Busy\r\nretry-after:  7 \r\nConnection: close\r\n\r\nuntil close body", True,
     Seen(DONE, 503, b"until close body", False, "7", 0, 0)),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
     False, Seen(DONE, 204, b"", True, None, 0, 0)),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", False, Seen(DONE, 304, b"", True, None, 0, 0)),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False, Seen(DONE, 200, b"", True, None, 0, 0)),
    (b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", False, Seen(DONE, 200, b"ok", True, None, 0, 0)),
    (b"HTTP/1.1 200 \r\nContent-Length: 2, 2\r\ncontent-length: 2\r\n\r\nok", False,
     Seen(DONE, 200, b"ok", True, None, 0, 0)),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False, Seen(DONE, 200, b"ok", False, None, 0, 0)),
    (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", False,
     Seen(DONE, 200, b"ok", True, None, 0, 0)),
    (b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 2\r\n\r\nok", False,
     Seen(DONE, 200, b"ok", False, None, 0, 0)),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzipped", True, Seen(DONE, 200, b"zipped", False, None, 0, 0)),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: CHUNKED\r\n\r\n2\r\nzz\r\n0\r\n\r\n",
     False, Seen(DONE, 200, b"zz", True, None, 0, 0)),
    (b"HTTP/1.1 429 Too Many\r\nX-Folded: a\r\n  b\r\nRetry-After: Wed, 21 Oct 2015\r\n 07:28:00 GMT\r\n"
     b"Retry-After: 9\r\nContent-Length: 1\r\n\r\n!", False,
     Seen(DONE, 429, b"!", True, "Wed, 21 Oct 2015 07:28:00 GMT", 0, 0)),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\r\n", False, Seen(DONE, 200, b"ok", False, None, 0, 2)),
    (b"HTTP/1.1 200 OK\r\nX-Bin: caf\xc3\xa9\x80\t!\r\nContent-Length: 2\r\n\r\nok", False,
     Seen(DONE, 200, b"ok", True, None, 0, 0)),
])
def test_framings_agree_however_the_bytes_arrive(data: bytes, eof: bool, expected: Seen) -> None:
    assert every_split(data, eof=eof) == expected


def test_a_close_before_the_end_is_not_a_response() -> None:
    for data in (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", b"HTTP/1.1 200 OK\r\nContent-",
                 CHUNKED[:-2], b""):
        assert parse([data], eof=True).state == NEED_DATA


def test_headers_and_head_are_exposed_for_the_final_response() -> None:
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\nHTTP/1.1 202 Accepted\r\nX-A: 1\r\n"
                  b"x-b:\tv  w \r\n  folded\r\nContent-Length: 0\r\n\r\n") == DONE
    assert p.headers() == [(b"x-a", b"1"), (b"x-b", b"v  w  folded"), (b"content-length", b"0")]
    assert p.interim == 1 and p.head.startswith(b"HTTP/1.1 202 Accepted\r\n")


def test_the_kept_body_is_bounded_and_enough_is_said_once_nothing_kept_can_change() -> None:
    body = bytes(range(256)) * 40                      # 10,240 bytes
    data = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    p = ResponseParser(4096)
    head_end = data.index(b"\r\n\r\n") + 4
    assert p.feed(data[:head_end + 4095]) == NEED_DATA
    assert p.feed(data[head_end + 4095:head_end + 4096]) == ENOUGH    # the kept prefix is full, more is due
    assert p.body == body[:4096] and p.discarded == 0
    assert p.feed(data[head_end + 4096:]) == DONE and p.discarded == len(body) - 4096
    assert every_split(data[:head_end + 4096], limit=4096).state == ENOUGH
    # a body exactly the limit is complete, not cut short: the connection can be reused
    exact = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    assert every_split(exact, limit=3) == Seen(DONE, 200, b"abc", True, None, 0, 0)
    # nothing kept: ENOUGH as soon as the head is in
    assert parse([data[:head_end]], limit=0).state == ENOUGH
    # chunked and until-close bodies say ENOUGH once a byte had to be dropped
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    assert parse([chunked], limit=3).state == NEED_DATA
    assert parse([chunked + b"1\r\n"], limit=3).state == ENOUGH        # a chunk is due, nothing of it kept
    assert parse([chunked + b"0\r\n\r\n"], limit=3).state == DONE
    assert parse([b"HTTP/1.1 200 OK\r\n\r\n", b"abc"], limit=3).state == NEED_DATA
    assert parse([b"HTTP/1.1 200 OK\r\n\r\n", b"abcd"], limit=3) == Seen(ENOUGH, 200, b"abc", False, None, 1, 0)


def test_an_endless_body_costs_no_memory() -> None:
    """100 MB through each kind of body: the parser holds the 4 KiB it keeps and nothing else."""
    block = b"x" * 65536
    for head, frame in ((b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n", block),
                        (b"HTTP/1.1 200 OK\r\n\r\n", block),
                        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"10000\r\n" + block + b"\r\n"),
                        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", block)):
        p = ResponseParser(4096)
        assert p.feed(head) in (NEED_DATA, ENOUGH)
        for _ in range(1600):
            assert p.feed(frame) == ENOUGH
            assert p.buffered == 0 and len(p.body) == 4096


def test_stray_bytes_after_a_complete_response_drop_keep_alive() -> None:
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") == DONE and p.keep_alive
    assert p.feed(b"HTTP/1.1 200 OK\r\n\r\n") == DONE
    assert not p.keep_alive and p.stray == 19 and p.body == b"ok"


@pytest.mark.parametrize(("data", "reason"), [
    (b"garbage\r\n\r\n", "bad status line"),
    (b"HTTP/2 200 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.2 200 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 20 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 099 Low\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1  200 OK\r\n\r\n", "bad status line"),
    (b"http/1.1 200 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200 O\x00K\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", "bad header line"),
    (b"HTTP/1.1 200 OK\r\n Content-Length: 5\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nX-A: b\x00c\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nX-A: b\x7fc\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nX-A: b\rc\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nX-A: b\nc\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "conflicting Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "conflicting Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n", "bad Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "chunked applied more than once"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "101 Switching Protocols"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk-size line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n", "bad chunk-size line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", "bad chunk-size line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "bad chunk-size line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\n", "bad chunk-size line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 17 + b"\r\n", "bad chunk-size line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x00b\r\n", "bad chunk-size line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "not followed by CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n\r\n", "not followed by CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: 1\r\n\r\n", "bad trailer line"),
])
def test_malformed_responses_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    for pieces in ([data], [data[i:i + 1] for i in range(len(data))]):
        with pytest.raises(MalformedResponse, match=reason):
            parse(pieces)


def test_limits_on_what_a_receiver_can_make_it_hold() -> None:
    # endless headers, fed as they would arrive: refused once the head passes 64 KiB
    p = ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(MalformedResponse, match="response head larger than 65536"):
        for _ in range(10_000):
            p.feed(b"X-Filler: " + b"a" * 90 + b"\r\n")
            assert p.buffered <= 65536 + 102
    # a complete head over the limit, too
    with pytest.raises(MalformedResponse, match="response head larger"):
        parse([b"HTTP/1.1 200 OK\r\n" + b"X-F: aaaaaaaaaaaaaaaa\r\n" * 4000 + b"\r\n"])
    small = Limits(max_head=4096, max_headers=5, max_line=100, max_chunk_line=20, max_interim=2)
    with pytest.raises(MalformedResponse, match="more than 5 header fields"):
        parse([b"HTTP/1.1 200 OK\r\n" + b"A: 1\r\n" * 6 + b"\r\n"], limits=small)
    assert parse([b"HTTP/1.1 200 OK\r\n" + b"A: 1\r\n" * 4 + b"Content-Length: 0\r\n\r\n"], limits=small).state == DONE
    with pytest.raises(MalformedResponse, match="header line longer than 100"):
        parse([b"HTTP/1.1 200 OK\r\nA: " + b"x" * 98 + b"\r\n\r\n"], limits=small)
    assert parse([b"HTTP/1.1 200 OK\r\nA: " + b"x" * 97 + b"\r\n\r\n"], limits=small).status == 200
    with pytest.raises(MalformedResponse, match="more than 2 interim"):
        parse([b"HTTP/1.1 100 Continue\r\n\r\n" * 3], limits=small)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with pytest.raises(MalformedResponse, match="chunk-size line longer than 20"):
        parse([chunked, b"0" * 21], limits=small)                   # no CRLF yet: refused all the same
    with pytest.raises(MalformedResponse, match="chunk-size line longer than 20"):
        parse([chunked + b"5;" + b"e" * 20 + b"\r\n"], limits=small)
    with pytest.raises(MalformedResponse, match="trailer line longer than 100"):
        parse([chunked + b"0\r\nT: " + b"x" * 100], limits=small)
    with pytest.raises(MalformedResponse, match="more than 5 trailer fields"):
        parse([chunked + b"0\r\n" + b"T: 1\r\n" * 6 + b"\r\n"], limits=small)
    with pytest.raises(MalformedResponse, match="trailer section larger than 4096"):
        parse([chunked + b"0\r\n"] + [b"T: " + b"x" * 90 + b"\r\n"] * 50, limits=Limits(max_head=4096))


# -- property: any well-formed response, however split, parses to what was sent ---------------------

TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~", min_size=1,
                max_size=12).filter(lambda n: n.lower() not in (
                    "content-length", "transfer-encoding", "connection", "retry-after"))
VALUE = st.binary(max_size=20).map(lambda b: bytes(c for c in b if c == 9 or 32 <= c != 127).strip(b" \t"))


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, bool, int, bytes, bool, str | None]:
    """(wire bytes, needs the close to end, status, body, keep-alive, Retry-After)."""
    http11 = draw(st.booleans())
    status = draw(st.sampled_from([200, 201, 202, 204, 301, 304, 400, 404, 410, 429, 500, 503, 599]))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    body = draw(st.binary(max_size=300)) if status not in (204, 304) else b""
    connection = draw(st.sampled_from([None, "close", "keep-alive"]))
    retry_after = draw(st.one_of(st.none(), st.from_regex(r"[0-9]{1,4}", fullmatch=True)))
    fields = [(n.encode(), v) for n, v in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=5))]
    if connection:
        fields.append((b"Connection", connection.encode()))
    if retry_after:
        fields.append((b"Retry-After", retry_after.encode()))
    tail = b""
    if status in (204, 304):
        until_close = False
    elif framing == "length":
        fields.append((b"Content-Length", str(len(body)).encode()))
        tail, until_close = body, False
    elif framing == "chunked":
        fields.append((b"Transfer-Encoding", b"chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        edges = [0, *cuts, len(body)]
        for a, b in itertools.pairwise(edges):
            if b > a:
                ext = draw(st.sampled_from([b"", b";x=1", b" ;q=\"a b\""]))
                tail += b"%x%s\r\n%s\r\n" % (b - a, ext, body[a:b])
        tail += b"0\r\n" + b"".join(b"%s: %s\r\n" % f for f in draw(st.lists(st.tuples(
            TOKEN.map(str.encode), VALUE), max_size=2))) + b"\r\n"
        until_close = False
    else:
        tail, until_close = body, True
    order = draw(st.permutations(fields))
    head = b"HTTP/1.%d %d Reason\r\n" % (int(http11), status) + b"".join(b"%s: %s\r\n" % f for f in order)
    keep_alive = (connection != "close" and (http11 or connection == "keep-alive")) and not until_close
    return head + b"\r\n" + tail, until_close, status, body, keep_alive, retry_after


@settings(max_examples=300, deadline=None)
@given(responses(), st.lists(st.integers(0, 2000), max_size=6), st.integers(0, 320))
def test_any_response_however_split(response: tuple[bytes, bool, int, bytes, bool, str | None],
                                    cuts: list[int], limit: int) -> None:
    wire, until_close, status, body, keep_alive, retry_after = response
    edges = [0, *sorted(c % (len(wire) + 1) for c in cuts), len(wire)]
    pieces = [wire[a:b] for a, b in itertools.pairwise(edges)]
    p = ResponseParser(limit)
    state, first_enough = NEED_DATA, None
    for piece in pieces:
        state = p.feed(piece)
        if state == ENOUGH and first_enough is None:
            first_enough = (p.status, p.body, p.retry_after)
    if until_close:
        assert state != DONE and p.feed_eof()
    else:
        assert state == DONE
    kept = body[:limit]
    assert (p.status, p.body, p.discarded, p.keep_alive, p.retry_after) == (
        status, kept, len(body) - len(kept), keep_alive, retry_after)
    if first_enough is not None:           # what was final at ENOUGH is what the whole response gave
        assert first_enough == (status, kept, retry_after) and len(body) > limit
