"""`soma up`: the platform's processes, started in a declared order behind health gates and supervised.

`spec` declares the components (command line, readiness URL, dependencies) and resolves the
order; `bringup` prepares the infrastructure and runs the supervisor in the foreground or
detached; `backoff` is the restart delay; `state` the JSON file `soma ps` reads; `probe` fetches a
`/readyz` (and `soma health`'s view of the whole platform); `runner` starts, watches, restarts and
stops the children.
"""
