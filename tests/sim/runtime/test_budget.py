"""Run budgets: every RTL run is bounded, and one that overruns stops with where the node
stands (program counter, instruction, controller state, tiles not done), read through the
host port's ``status`` and ``tiles_busy`` registers."""

import numpy as np
import pytest

from diannao.sim.engines.board import BoardEngine, Link
from diannao.sim.runtime.run import run_network
from diannao.boards.icebreaker import ICEBreakerTop
from diannao.boards.protocol import Cmd, Status, FLAG_BUSY, encode_request
from diannao.sim.engines.uart_sim import SimUART, preload_weights
from diannao.golden.network import Conv, FC, MaxPool, Network
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.hw.node import Region, counter_index
from diannao.sim.compiler import cycle_model
from diannao.sim.runtime import host
from diannao.sim.cli import main
from diannao.sim.compiler.program import compile_network
from diannao.sim.tools.digits import load_network, load_test_set
from diannao.sim.engines.hdl import run_hdl, simulator_available
from diannao.sim.runtime.host import BUDGET_MARGIN, RunBudgetError, cycle_budget
from diannao.sim.engines.pysim import run_program

SMALL = preset("small")


def _network():
    rng = np.random.default_rng(0)
    return Network((3, 6, 6), [
        Conv(rng.normal(0, .3, (5, 3, 3, 3)), rng.normal(0, .1, 5), pad=1, activation="relu"),
        MaxPool(2), FC(rng.normal(0, .3, (4, 45)), rng.normal(0, .1, 4))])


@pytest.fixture(scope="module")
def case():
    qnet = quantize(_network())
    program = compile_network(qnet, SMALL)
    x = np.random.default_rng(1).integers(-256, 256, (1, 3, 6, 6))
    # A budget that ends while the tiles run the first CONV: the LOAD and 5 cycles more.
    cycles = cycle_model.program_cycles(program.instructions, SMALL)
    assert [f["op"].name for f in program.instructions[:2]] == ["LOAD", "CONV"]
    return qnet, program, x, cycles[0] + 5


def test_default_budget_is_twice_the_model_plus_a_margin(case):
    _, program, _, _ = case
    assert cycle_budget(program) == 2 * sum(
        cycle_model.program_cycles(program.instructions, SMALL)) + BUDGET_MARGIN == 2 * 541 + 1000


# The CONV started the tiles and the node went on to the STORE, whose SYNC waits for them.
WHERE = ("pc 2 (STORE of layer 0 (conv)), controller state SYNC, "
         "tiles not done: [0, 1, 2, 3]")


def test_pysim_overrun_reports_where_the_node_stands(case):
    _, program, x, budget = case
    with pytest.raises(RunBudgetError, match=rf"within its budget of {budget} cycles "
                                             rf"\(the cycle model predicts 541\)") as err:
        run_program(program, x, budget=budget)
    assert WHERE in str(err.value)
    assert err.value.status == dict(busy=1, error=0, pc=3, state="SYNC",
                                    tiles_busy=[0, 1, 2, 3])


def test_pysim_overrun_in_a_load(case):
    _, program, x, _ = case
    with pytest.raises(RunBudgetError, match=r"pc 0 \(LOAD of layer 0 \(conv\)\), "
                                             r"controller state LOAD$"):
        run_program(program, x, budget=6)


def test_status_of_an_idle_node(case):
    # After HALT is decoded the pc points past it and the controller is idle.
    _, program, x, _ = case
    _, runs = run_program(program, x)
    assert runs[0]["status"] == dict(busy=0, error=0, pc=len(program.instructions),
                                     state="IDLE", tiles_busy=[])


def test_verilator_overrun_reports_where_the_node_stands(case):
    ok, why = simulator_available("verilator")
    if not ok:
        pytest.skip(why)
    _, program, x, budget = case
    with pytest.raises(RunBudgetError, match="verilator: the node did not finish") as err:
        run_hdl(program, x, budget=budget)
    assert WHERE in str(err.value)


def test_cli_overrun_is_one_line_exit_1(case, tmp_path, monkeypatch, capsys):
    _network().save(tmp_path / "net.json")
    np.save(tmp_path / "x.npy", np.zeros((3, 6, 6)))
    monkeypatch.setattr(host, "cycle_budget", lambda program: case[3])
    assert main(["run", "--network", str(tmp_path / "net.json"), "--input",
                 str(tmp_path / "x.npy"), "--engine", "pysim", "--out",
                 str(tmp_path / "y.npy")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("diannao: error: the node did not finish") and WHERE in err
    assert err.count("\n") == 1 and not (tmp_path / "y.npy").exists()


@pytest.mark.slow
def test_board_time_limit_reports_where_the_node_stands():
    # With no time at all the driver polls once: the CNN (about 4,000 cycles; the frames
    # of START, the poll and the status reads take about 1,500) is still running.
    qnet = quantize(load_network("cnn"))
    x, _ = load_test_set((1, 8, 8))
    program = compile_network(qnet, preset("icebreaker"))
    top = ICEBreakerTop(divisor=2)
    preload_weights(top, program)
    uart = SimUART(top)
    with pytest.raises(RunBudgetError, match=r"within the time limit of 0 s .*pc \d+ "
                                             r"\((LOAD|CONV|MAXPOOL|STORE) of layer \d "
                                             r"\((conv|maxpool|fc)\)\)"):
        run_network(qnet, qnet.quantize_input(x[:1]),
                    BoardEngine(uart, "icebreaker", load_weights=False, timeout=0))
    # Registers were read while it ran (busy, it still is); NM cannot be.
    link = Link(uart, 2)
    assert link.status()[0] & FLAG_BUSY
    assert link.send_frame(encode_request(2, Cmd.READ, Region.NM, 0))[0] == Status.BUSY
    assert link.request(Cmd.READ, Region.COUNTER, counter_index("status")) & 1
