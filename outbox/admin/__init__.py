"""The operator's side of the outbox: inspect and replay one tenant's rows, audited.

`queries` reads rows (pages, statistics, the rows a replay picks); `filters` checks every
filter, id and cursor; `replay` copies rows as new pending ones and `audit` records who did
it; `auth` holds the bearer tokens and scopes. Two front ends share all of it: the HTTP API
(`api`, with its schema in `models` and its Prometheus metrics in `metrics`) and the
terminal (`cli`).
"""
