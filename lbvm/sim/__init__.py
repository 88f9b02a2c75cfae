"""The replay simulator: real workload traces through the production planning path.

``traces`` (and ``gwa``, ``storetrace``) read a trace into a ``Trace``; ``scenario`` describes
the simulated cluster; ``replay`` steps through the trace with the real Problem builder,
algorithms, validator, executor and journal; ``metrics`` and ``power`` score the result.
docs/simulator.md describes the models and their rules.
"""
