"""``diannao wave``: a waveform inspector built on vcdvcd (to be written)."""


def add_subcommand(sub):
    p = sub.add_parser("wave", help="inspect a VCD: signals, histories, instructions, activity")
    p.add_argument("vcd", help="VCD file (Amaranth simulator or Verilator)")
    p.set_defaults(func=_cmd_wave)


def _cmd_wave(args):
    raise ValueError("diannao wave is not implemented yet")
