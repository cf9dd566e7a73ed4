"""From a quantized network to a program, and what it will cost.

:mod:`.mapping` lays tensors out in rows and SB images; :mod:`.tiling` cuts real-size layers
into boxes and chunks; :mod:`.paging` and :mod:`.loops` fit long programs into the
instruction memory; :mod:`.program` compiles a network for a
:class:`diannao.hw.config.Config`; :mod:`.cycle_model` predicts every cycle and traffic
counter. Imports :mod:`diannao.golden` and the plain-Python definitions of
:mod:`diannao.hw` (:mod:`~diannao.hw.isa`, :mod:`~diannao.hw.config`), never Amaranth.
"""
