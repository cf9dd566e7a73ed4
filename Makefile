# The two commands a new user needs are `make demo` and `make test`; both
# create .venv and install the pinned dependencies on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# make fuzz N=5000: random networks on random configurations under Verilator
# (DIANNAO_FUZZ_MULTIPLIERS=4096 for nodes of every size; default 1024).
N ?= 2000
# make faults FRAMES=20000 SEED=1: the link-fault campaign, whole networks over a simulated
# board link with faults (sim/tools/link_faults.py, docs/host-protocol.md).
FRAMES ?= 10000
SEED ?= 0

.PHONY: demo test fuzz faults bench verilog synth postsynth formal clean help

help:
	@echo "make demo     run the digits networks (float, 16-bit golden, RTL)"
	@echo "make test     run the test suite"
	@echo "make fuzz     N random networks (default 2000) on random configurations, RTL vs golden"
	@echo "make faults   FRAMES frames (default 10000) of whole networks over a faulty simulated board link"
	@echo "make bench    benchmarks (utilization, simulation speed)"
	@echo "make verilog  emit Verilog for the default configuration"
	@echo "make synth    board builds (ULX3S, iCEBreaker) and the ULX3S build's checks"
	@echo "make postsynth  the digits networks through each board's synthesized netlist (Verilator), with times"
	@echo "make formal   formal proofs (SymbiYosys): one line per property, proved or a counterexample"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/diannao demo

test: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxschedchunk 1

fuzz: $(STAMP)
	DIANNAO_FUZZ_NETWORKS=$(N) $(BIN)/python -m pytest -n auto --hypothesis-profile=fuzz \
		-p no:cacheprovider tests/sim/tools/test_fuzz.py

faults: $(STAMP)
	$(BIN)/diannao faults --frames $(FRAMES) --seed $(SEED)

bench: $(STAMP)
	$(BIN)/diannao bench

verilog: $(STAMP)
	$(BIN)/diannao verilog --config small -o build/node_small.v

# Both boards' full builds with their figures; the ULX3S's as the test make test leaves out
# (pytest marker synth: every multiplier in a DSP, 125 MHz met).
synth: $(STAMP)
	$(BIN)/diannao build --board icebreaker
	$(BIN)/python -m pytest -m synth -s -p no:cacheprovider tests/boards/test_board_build.py

# Each board's netlist as yosys synthesizes it (the board build's script, written as Verilog),
# on the YoWASP package's cell models under Verilator, runs the digits MLP and CNN over its
# UART: bit-exact with golden, cycle-equal with the model; the time of each step per board
# (sim/tools/postsynth.py, docs/boards.md). The iCEBreaker's also runs in make test.
postsynth: $(STAMP)
	$(BIN)/python -m diannao.sim.tools.postsynth

# The proofs (sim/tools/formal.py), each with its depth or k-induction, one line each; the
# tests run the same proofs (tests/sim/tools/test_formal.py).
formal: $(STAMP)
	$(BIN)/python -m diannao.sim.tools.formal

clean:
	rm -rf build .pytest_cache
