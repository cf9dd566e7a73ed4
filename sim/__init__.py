"""Software around the RTL, one role per subpackage; imports go one way, down this list:

:mod:`.compiler`
    Networks to programs: mapping, the compiler, the analytic cycle model.
:mod:`.runtime`
    The one run path: input checks, the host-port protocol and run budgets, reports.
:mod:`.engines`
    How a program reaches a node: Amaranth's simulator, generated Verilog under
    Verilator/Icarus via cocotb, a board over UART.
:mod:`.tools`
    Waveform inspector, benchmarks, the digits data and networks, fuzzing.
:mod:`.cli`
    The ``diannao`` command.

Below them all sit :mod:`diannao.golden` and :mod:`diannao.hw` (and :mod:`diannao.boards`,
which :mod:`.engines` and :mod:`.cli` use).
"""
