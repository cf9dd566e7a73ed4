"""Tools built on the engines: the VCD inspector (:mod:`.waveforms`), benchmarks
(:mod:`.bench`, :mod:`.speed`), the digits data set and networks (:mod:`.digits`,
:mod:`.train_digits`, ``networks/``) and fuzzing (:mod:`.fuzz`).
"""
