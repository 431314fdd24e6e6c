"""Benchmarks of cadt-gateway with committed results (`make bench`, see bench/__main__.py).

Every figure is a ratio against a baseline measured in the same run on the same machine, over
several interleaved rounds, reporting medians: absolute numbers move with the machine, ratios
much less. Add a benchmark by writing a module here with a function decorated by
`bench.registry.benchmark`; `python -m bench` discovers it.
"""
