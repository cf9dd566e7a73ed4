"""The node's generated Verilog under Verilator and Icarus via cocotb's runner API:
loaded through the host port, bit-exact with golden, cycle-equal with the cycle model."""

import os
import re
import subprocess

import numpy as np
import pytest

from diannao.golden.formats import to_fixed
from diannao.golden.network import Network, Conv, FC, LRN, MaxPool, AvgPool
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.hw.node import HostBus
from diannao.hw.isa import Op
from diannao.sim.compiler.program import compile_network
from diannao.sim.tools.fuzz import differences
from diannao.sim.tools.workloads import load_workload
from diannao.sim.engines import hdl
from diannao.sim.engines.hdl import run_hdl, simulator_available, verilator_env
from diannao.sim.engines.verilog import generate


def _require(simulator):
    ok, why = simulator_available(simulator)
    if not ok:
        pytest.skip(why)


def _network(seed=0):
    rng = np.random.default_rng(seed)
    return Network((3, 7, 7), [
        Conv(rng.normal(0, .3, (6, 3, 3, 3)), rng.normal(0, .1, 6), stride=1, pad=1,
             activation="relu"),
        LRN(5, alpha=0.05, beta=0.75, k=2.0),
        MaxPool(2),
        Conv(rng.normal(0, .3, (5, 6, 2, 2)), rng.normal(0, .1, 5), stride=1, activation="tanh"),
        AvgPool(2),
        FC(rng.normal(0, .3, (4, 5)), rng.normal(0, .1, 4), activation="sigmoid")])


def _check(simulator, config, batch=2):
    net = _network()
    qnet = quantize(net)
    program = compile_network(qnet, config)
    x = to_fixed(np.random.default_rng(1).uniform(-1, 1, (batch,) + net.input_shape), 8)
    y, runs, info = run_hdl(program, x, simulator=simulator)
    assert differences(qnet, program, x, runs) == []
    assert np.array_equal(y, np.stack([qnet.run(xi) for xi in x]))
    return info


def test_verilator_small():
    _require("verilator")
    info = _check("verilator", preset("small"))
    # The build is cached by a hash of the Verilog and flags: a second run does not rebuild.
    again = _check("verilator", preset("small"), batch=1)
    assert again["cached"] and again["build_dir"] == info["build_dir"]


def test_a_build_belongs_to_the_environment_that_made_it(monkeypatch):
    # A Verilator executable finds cocotb's libraries through a run path into the
    # environment that built it: the cache of a deleted environment (another clone's .venv)
    # must not be reused, or the run exits 127 without a word.
    text = generate(preset("small"), top="node", name=hdl.TOP)
    here = hdl._build_dir("verilator", text, False)
    key = hdl._toolchain_key()
    assert any(part.endswith(os.path.join("cocotb", "libs")) for part in key)
    monkeypatch.setattr(hdl, "_toolchain_key", lambda: ["/gone/.venv/cocotb/libs", *key[1:]])
    assert hdl._build_dir("verilator", text, False) != here


def test_icarus_small():
    _require("icarus")
    _check("icarus", preset("small"), batch=1)


@pytest.mark.slow
def test_verilator_dadiannao_16_tiles():
    _require("verilator")
    from diannao.sim.tools.speed import bench_config
    _check("verilator", bench_config(), batch=1)        # the benchmark's node (~2 min build)


def test_bench_drives_the_host_bus_ports():
    # The cocotb bench names the node's HostBus ports as Amaranth writes them (host__addr...).
    from diannao.sim.engines.cocotb_bench import HOST
    config = preset("small")
    assert set(HOST) == set(HostBus(config).members)
    header = re.search(r"^module diannao_node\((.*?)\);", generate(config), re.M | re.S)
    ports = {p.strip() for p in header.group(1).split(",")}
    assert set(HOST.values()) <= ports
    assert not {p for p in ports if p.startswith("host_") and not p.startswith("host__")}


def test_generated_verilog_lints_clean(tmp_path):
    _require("verilator")
    path = tmp_path / "node.v"
    path.write_text(generate(preset("small")))
    env = verilator_env()
    proc = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", str(path)],
                          capture_output=True, text=True,
                          env={**os.environ, **env})
    errors = [l for l in proc.stderr.splitlines() if l.startswith("%Error")]
    assert proc.returncode == 0 and not errors, "\n".join(errors[:20])


@pytest.mark.slow
def test_verilator_alexnet_conv5_on_the_full_size_node():
    # A real-size layer on the full-size dadiannao node (16 tiles of tn=16, NBin and NBout
    # 16 KB, SB 2 MB per tile, NM 4 MB; memories without initial contents, filled through
    # the host port): AlexNet's conv5 (384x13x13 -> 256, 3x3 pad 1, 4,056 input rows for
    # NBin's 512), tiled, its reduction in chunks with exact partial sums, its STOREs in the
    # store engine while the tiles compute. (conv3's cheapest plan no longer chunks its
    # reduction: 256 input channels fit NBin's half for output tiles of 2x2.)
    _require("verilator")
    conv5 = [l for l in load_workload("alexnet").layers if type(l) is Conv][4]
    net = Network((384, 13, 13), [conv5])
    qnet = quantize(net)
    config = preset("dadiannao")
    program = compile_network(qnet, config)
    assert any(f.get("psum_out") for f in program.instructions)
    assert any(f["op"] == Op.STORE and not f["sync"] for f in program.instructions)
    x = to_fixed(np.random.default_rng(4).uniform(-1, 1, (1,) + net.input_shape), 8)
    y, runs, info = run_hdl(program, x, simulator="verilator")
    assert differences(qnet, program, x, runs) == []
    assert np.array_equal(y[0], qnet.run(x[0]))


@pytest.mark.slow
def test_verilator_diannao_benchmark_class1_and_conv4_stream_from_main_memory():
    # DianNao's own benchmark on its own preset (one tile of tn=16, NBin and NBout 2 KB, SB
    # 32 KB, main memory of 256 bytes a cycle and 100 cycles of latency): CLASS1 (960 -> 20,
    # 122 SB rows for SB's 64) and CONV4 (16x32x32, 7x7 -> 512: 800 KB of weights, 25 times
    # SB), their weights streamed by SBLOAD, through one build: bit-exact with golden, every
    # counter (main-memory beats included) equal to the cycle model. The instruction memory
    # is cut to 4,096 so that CONV4 (18,305 instructions flat) is made with LOOPs from its
    # plan, as CONV5 is on the preset's 65,536 (four levels of them).
    _require("verilator")
    config = preset("diannao").replace(imem_depth=4096)
    jobs, nets = [], []
    for name in ("diannao-class1", "diannao-conv4"):
        qnet = quantize(load_workload(name))
        program = compile_network(qnet, config)
        assert all(l.streamed for l in program.layers)
        assert program.layers[0].looped == (name == "diannao-conv4")
        x = to_fixed(np.random.default_rng(5).uniform(-1, 1, (1,) + qnet.input_shape), 8)
        jobs.append((program, x))
        nets.append(qnet)
    results, info = hdl.run_jobs(config, jobs, simulator="verilator")
    for qnet, (program, x), (y, runs) in zip(nets, jobs, results):
        assert differences(qnet, program, x, runs) == []
        assert np.array_equal(y[0], qnet.run(x[0]))
