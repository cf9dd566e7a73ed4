"""What every engine shares: the input check (:mod:`.inputs`), the host-port protocol with
run budgets (:mod:`.host`), the performance report (:mod:`.report`) and the one run path
(:mod:`.run`: :func:`~.run.run_network` and the :class:`~.run.Engine` interface).
"""
