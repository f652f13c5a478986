"""Developer and operator tools built on the runtime: the end-to-end and inference benchmarks,
the chaos run with its fault proxy and poison corpus, the demo, the Grafana dashboards generator
and the waits they share.

Nothing in the runtime (stream, serving, stack, observe, the Faust app) imports them, so they
are free to drive the whole stack, and the runtime stays free of their dependencies.
"""
