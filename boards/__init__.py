"""FPGA boards: platforms, the UART host link gateware, the board tops and their builds
(YoWASP Yosys/nextpnr), and the host protocol's constants.

The host side of the link, the ``board`` engine, is :mod:`diannao.sim.engines.board`.
Imports only :mod:`diannao.hw` and :mod:`diannao.golden`.
"""
