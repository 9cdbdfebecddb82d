"""The relay: claim due rows fairly, publish them, judge the broker's reports, commit the outcome.

`service` runs the loop; `claim` holds its SQL; `publisher` produces a claimed batch;
`judge` (pure) decides each row's fate and `committer` writes it; `policy` (pure) holds
backoff, circuits, fair shares and poll pacing; `wakeup` the LISTEN/NOTIFY idling; `metrics`
what it exports.
"""

from outbox.relay.metrics import RelayStats
from outbox.relay.service import Relay

__all__ = ["Relay", "RelayStats"]
