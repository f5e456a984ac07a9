"""Measuring: the sweep, each point in a process of its own, and what the points run against.

`sweep` plans the points and runs each through `point` in a fresh `child` process, which
`monitor` watches; `service` is the latency service, `engines` the dask and celery set-ups,
`interpreters` other Pythons, `environment` the machine, `micro` the runtimes' own costs.
"""
