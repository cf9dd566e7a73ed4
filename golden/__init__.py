"""The golden model: the numpy reference every other part is checked against.

Exact integer layers (:mod:`.layers`), the fixed-point formats and activation tables
(:mod:`.formats`), networks and their file format (:mod:`.network`), the quantizer
(:mod:`.quant`) and the float reference (:mod:`.float_ref`). Imports nothing else of the
project.
"""
