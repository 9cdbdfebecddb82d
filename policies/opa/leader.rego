# Sample leader-change policy for the integrator (POST /v1/data/soma/leader/allow).
# input: {"tenant": ..., "from": <old leader>, "to": <new leader>, "weights": {domain: weight}}
package soma.leader

default allow := true

# A domain whose name starts with "restricted" may never take the lead.
allow := false if startswith(input.to, "restricted")
