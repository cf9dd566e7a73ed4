"""``diannao build``: FPGA builds (to be written)."""


def add_subcommand(sub):
    p = sub.add_parser("build", help="build the node for an FPGA board")
    p.add_argument("--board", required=True, choices=["ulx3s", "icebreaker"])
    p.set_defaults(func=_cmd_build)


def _cmd_build(args):
    raise ValueError("diannao build is not implemented yet")
