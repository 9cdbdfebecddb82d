"""`soma up`: the platform's processes, started in a declared order behind health gates and supervised.

`spec` declares the components (command line, readiness URL, dependencies) and resolves the
order; `backoff` is the restart delay; `state` the JSON file `soma ps` reads; `probe` fetches a
`/readyz`; `runner` starts, watches, restarts and stops the children.
"""
