# amaranth: UnusedElaboratable=no
"""The board driver (:class:`Link`) over scripted faults, against the host link RTL on an
ideal byte line (:class:`SimBytes`): each fault is detected and recovered by a retry, a
repeated START never runs twice, a late response is never taken for the answer to the next
request, and a request that cannot get through raises an error naming it, in bounded time."""

import pytest

from diannao.boards.protocol import Cmd, Status, FLAG_DONE, decode_response, response_len
from diannao.hw.config import preset
from diannao.hw.node import Region
from diannao.sim.engines.board import Link, LinkError, ProtocolError
from diannao.sim.engines.uart_sim import ByteNode, SimBytes


LATE = object()


class Scripted:
    """A transport around a :class:`SimBytes` that spoils chosen frames: ``requests`` and
    ``responses`` map a frame's index (from 0, in each direction) to a function of its bytes
    returning the bytes that go on (b"" drops it, twice the frame repeats it; for a request
    also a tuple of byte strings and numbers, a number being that many byte times of
    silence), or, for a response, to ``LATE``: the frame arrives after the driver's next
    request. :attr:`answers` holds every response frame the board sent."""

    def __init__(self, inner, requests=None, responses=None):
        self.inner = inner
        self.requests, self.responses = dict(requests or {}), dict(responses or {})
        self.byte_time = inner.byte_time
        self.sent = 0
        self.answered = 0
        self.answers = []
        self._frame = bytearray()
        self._ready = bytearray()
        self._late = b""

    def write(self, data):
        spoil = self.requests.get(self.sent, bytes)
        self.sent += 1
        out = spoil(bytes(data))
        for part in out if isinstance(out, tuple) else (out,):
            if isinstance(part, bytes):
                self.inner.write(part)
            else:
                self.inner.pause(part * self.byte_time)
        self._ready += self._late
        self._late = b""
        return len(data)

    def clock(self):
        return self.inner.clock()

    def discard(self):
        self._pull()
        self._ready.clear()

    def _pull(self):
        n = response_len(2)
        for _, byte in self.inner.take():
            self._frame.append(byte)
            if len(self._frame) == n:
                self.answers.append(decode_response(2, bytes(self._frame)))
                spoil = self.responses.get(self.answered, bytes)
                self.answered += 1
                if spoil is LATE:
                    self._late += self._frame
                else:
                    self._ready += spoil(bytes(self._frame))
                self._frame.clear()

    def read(self, n, timeout):
        end = self.clock() + timeout
        while True:
            self._pull()
            if len(self._ready) >= n or self.clock() >= end:
                break
            self.inner.advance(min(self.byte_time, end - self.clock()))
        out = bytes(self._ready[:n])
        del self._ready[:n]
        return out


@pytest.fixture(scope="module")
def node():
    """One simulated board for the module's tests (building one takes seconds)."""
    return SimBytes(ByteNode(preset("icebreaker"), 2))


@pytest.fixture
def board(node):
    """``board(**spoils)``: the shared board behind a new :class:`Scripted`, after a quiet
    line (any partial frame abandoned), and the list of what it executes from now on."""
    def make(**spoils):
        node.advance(200 * node.byte_time)
        node.discard()
        executed = Executed(node)
        return executed, Scripted(node, **spoils)
    return make


class Executed:
    """What the board executed since it was made (a view of ``SimBytes.executed``)."""

    def __init__(self, node):
        self.node, self.mark = node, len(node.executed)

    def list(self):
        return self.node.executed[self.mark:]

    def advance(self, seconds):
        self.node.advance(seconds)


def test_transport_needs_the_interface():
    class Old:
        def write(self, data):
            pass

        def read(self, n):
            return b""

    with pytest.raises(TypeError, match="discard, clock, byte_time"):
        Link(Old(), 2)


def test_each_spoiled_request_is_retried(board):
    """A request dropped whole, cut short, with a flipped bit, with a byte missing: each
    attempt fails (no response, or the board's BAD_CRC), the driver waits until the board
    has abandoned any partial frame and sends it again; only good frames are executed."""
    executed, t = board(requests={
        0: lambda f: b"",                          # lost
        1: lambda f: f[:7],                        # cut short
        2: lambda f: f[:9] + bytes([f[9] ^ 0x24]) + f[10:],   # two bits flipped
        3: lambda f: f[:4] + f[5:],                # a byte dropped
    })
    link = Link(t, 2)
    assert link.request(Cmd.WRITE, Region.NM, 9, 0x1234ABCD) == 0
    assert link.stats["retries"] == 4 and link.stats["frames"] == 5
    assert link.stats["timeout"] == 3 and link.stats["board_bad_crc"] == 1
    assert executed.list() == [("write", Region.NM, 9, 0x1234ABCD)]


def test_each_spoiled_response_is_retried(board):
    """A response lost, cut short, with a flipped bit, with garbage before it, with bytes
    after it: each attempt fails and is sent again (the WRITE runs again: the same word)."""
    executed, t = board(responses={
        0: lambda f: b"",
        1: lambda f: f[:3],
        2: lambda f: f[:4] + bytes([f[4] ^ 0x80]) + f[5:],
        3: lambda f: b"\x00" + f,
        4: lambda f: f + b"\x5A",
    })
    link = Link(t, 2)
    link.request(Cmd.WRITE, Region.NM, 4, 77)
    assert [link.stats[k] for k in ("timeout", "short", "bad_crc", "garbage", "extra")] == \
        [1, 1, 1, 1, 1]
    assert set(executed.list()) == {("write", Region.NM, 4, 77)}
    assert link.request(Cmd.READ, Region.NM, 4) == 77


def test_a_repeated_response_is_not_the_next_answer(board):
    """The board's answer to READ row 1 arrives twice; the next request, READ row 2, must
    not take the copy (same CRC, same sync: only the tag tells them apart)."""
    executed, t = board(responses={2: lambda f: f + f})
    link = Link(t, 2)
    link.request(Cmd.WRITE, Region.NM, 1, 111)
    link.request(Cmd.WRITE, Region.NM, 2, 222)
    assert link.request(Cmd.READ, Region.NM, 1) == 111
    assert link.request(Cmd.READ, Region.NM, 2) == 222
    # The copy came right after the first: the driver saw bytes after the response and
    # asked again; the copy of that answer was then skipped for its tag or discarded.
    assert link.stats["extra"] + link.stats["stale"] >= 1


def test_a_late_response_is_skipped_for_its_tag(board):
    """The answer to READ row 3 comes late, after the driver has timed out and sent the
    READ again: it is skipped (an earlier attempt's tag), the retry's own answer taken."""
    executed, t = board(responses={2: LATE})
    link = Link(t, 2)
    link.request(Cmd.WRITE, Region.NM, 3, 333)
    link.request(Cmd.WRITE, Region.NM, 4, 444)
    assert link.request(Cmd.READ, Region.NM, 3) == 333
    assert link.stats["timeout"] == 1 and link.stats["stale"] == 1
    assert link.request(Cmd.READ, Region.NM, 4) == 444


def test_a_repeated_start_runs_once(board):
    """START's answer lost: the driver sends it again; the board answers BUSY or STALE
    (the run count moved), the driver confirms by the run count, the node ran once."""
    executed, t = board(responses={1: lambda f: b""})       # 0: STATUS, 1: START
    link = Link(t, 2)
    runs = link.start()
    assert link.stats["start_confirmed"] == 1 and link.stats["timeout"] == 1
    assert executed.list().count(("start",)) == 1
    assert link.status() == (FLAG_DONE, runs)


def test_a_duplicated_start_runs_once(board):
    """A START frame repeated on the line, the copy after the node has finished: the copy
    finds the run count moved on (STALE) and does not run the program again."""
    executed, t = board(requests={1: lambda f: (f, 60, f)})
    link = Link(t, 2)
    runs = link.start()
    assert link.status() == (FLAG_DONE, runs)
    assert executed.list().count(("start",)) == 1
    start_tag = t.answers[1][1]
    assert [a[0] for a in t.answers if a[1] == start_tag] == [Status.OK, Status.STALE]


def test_a_request_that_never_gets_through_is_named(board):
    """Every attempt fails: LinkError names the command, region and address and what the
    board may have done, after ``attempts`` attempts (bounded in simulated time)."""
    executed, t = board(requests={i: (lambda f: b"") for i in range(3)})
    link = Link(t, 2, attempts=3)
    t0 = t.clock()
    with pytest.raises(LinkError, match=r"WRITE of SB address 12: no good response in 3 "
                                        r"attempts \(no response, no response, no "
                                        r"response\); the word there holds its old value"):
        link.request(Cmd.WRITE, Region.SB, 12, 5)
    assert t.clock() - t0 < 3 * (link.response_timeout + link.quiet) + 10 * t.byte_time
    assert link.stats["failed"] == 1 and executed.list() == []


class Idle:
    """A transport on which nothing ever arrives (for the driver's logic alone)."""
    byte_time = 1e-3

    def write(self, data):
        return len(data)

    def read(self, n, timeout):
        return b""

    def discard(self):
        pass

    def clock(self):
        return 0.0


def test_start_checks_the_run_count():
    """Link.start refuses a running node, and a START answered STALE whose run count did
    not move by one (someone else's START) is an error, not a success."""
    link = Link(Idle(), 2)
    link.status = lambda: (1, 5)                     # busy
    with pytest.raises(ProtocolError, match="already running"):
        link.start()
    link.status = lambda: (0, 5)
    link.transact = lambda *args, **kw: (Status.STALE, 0)
    with pytest.raises(ProtocolError, match="answered STALE and the run count is 5, not 6"):
        link.start()
    link.transact = lambda *args, **kw: (Status.OK, 0)
    assert link.start() == 6
