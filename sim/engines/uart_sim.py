"""A board top in Amaranth's simulator behind a byte-stream transport (for the driver)."""

from collections import deque

from diannao.sim.engines.simulator import Simulator


__all__ = ["SimUART", "preload_weights"]


def preload_weights(top, program):
    """Put ``program``'s SB images straight into the memories of ``top``'s node (before the
    simulation is created), so that a test can skip the slowest part of the loading
    (:class:`diannao.sim.engines.board.BoardEngine` with ``load_weights=False``)."""
    for tile, image in zip(top.core.node.tiles, program.sb):
        tile.sb.data.init = image.tolist()


class SimUART:
    """A file-like transport whose other end is the ``rx``/``tx`` UART of a board top
    simulated in Amaranth's simulator: :meth:`write` queues bytes that a process shifts
    into ``rx`` (8N1, ``top.divisor`` clocks per bit); :meth:`read` runs the simulation until
    the bytes sent on ``tx`` are there (or ``timeout_cycles`` pass, then it returns what it
    has, like a serial port's read timeout).

    Parameters
    ----------
    top : ULX3STop or ICEBreakerTop (anything with ``rx``, ``tx``, ``divisor``)
    timeout_cycles : int
        Simulated cycles :meth:`read` waits for a byte.
    """

    def __init__(self, top, timeout_cycles=200_000):
        if not isinstance(timeout_cycles, int) or timeout_cycles < 1:
            raise ValueError(f"SimUART timeout_cycles must be a positive int, not "
                             f"{timeout_cycles!r}")
        self.top = top
        self.divisor = top.divisor
        self.timeout_cycles = timeout_cycles
        self.period = 1e-8
        self.cycles = 0
        self._out = deque()
        self._in = deque()
        self._sim = Simulator(top)
        self._sim.add_clock(self.period)
        self._sim.add_testbench(self._drive, background=True)
        self._sim.add_testbench(self._listen, background=True)
        self._now = 0.0

    async def _drive(self, ctx):
        rx, div = self.top.rx, self.divisor
        ctx.set(rx, 1)
        while True:
            if not self._out:
                await ctx.tick()
                continue
            byte = self._out.popleft()
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                ctx.set(rx, bit)
                await ctx.tick().repeat(div)

    async def _listen(self, ctx):
        tx, div = self.top.tx, self.divisor
        while True:
            await ctx.negedge(tx)
            await ctx.tick().repeat(div + div // 2)
            byte = 0
            for i in range(8):
                byte |= ctx.get(tx) << i
                await ctx.tick().repeat(div)
            if ctx.get(tx):                       # stop bit
                self._in.append(byte)

    def _run(self, cycles):
        self._now += cycles * self.period
        self._sim.run_until(self._now)
        self.cycles += cycles

    def write(self, data):
        self._out.extend(bytes(data))
        return len(data)

    def flush(self):
        pass

    def read(self, n):
        waited = 0
        step = 10 * self.divisor
        while len(self._in) < n and waited < self.timeout_cycles:
            self._run(step)
            waited += step
        return bytes(self._in.popleft() for _ in range(min(n, len(self._in))))

    def reset_input_buffer(self):
        self._in.clear()
