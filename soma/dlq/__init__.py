"""Dead letters: read the `dlq` topic with filters, show one decoded, redrive chosen ones (Kafka only).

- `select`: how a dead letter is named (``dlq:<partition>:<offset>``), the filters, the cursor.
- `letters`: one dead-letter record decoded, and its original value decoded when it decodes.
- `reader`: bounded reads of the `dlq` topic (a deadline, never a hang on an empty topic).
- `redrive`: the original key, value and headers back to the source topic, with ``redrive-of``.

The audited commands and HTTP routes built on this live in the outbox's admin layer
(outbox/admin/dlq*.py): the audit trail is an outbox table.
"""
