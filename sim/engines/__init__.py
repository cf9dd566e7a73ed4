"""Engines: how a compiled program reaches a node's host port.

:mod:`.pysim` (Amaranth's simulator, with :mod:`.simulator` and :mod:`.vcd`;
:mod:`.pysim_tile` runs a single tile), :mod:`.hdl` (the generated Verilog of
:mod:`.verilog` under Verilator or Icarus, driven by the cocotb testbench
:mod:`.cocotb_bench`), :mod:`.board` (a board over the UART link; :mod:`.uart_sim` is a
simulated board behind a serial-port-like object). :mod:`.registry` names them for the
command line. Everything else about a run is :mod:`diannao.sim.runtime`'s.
"""
