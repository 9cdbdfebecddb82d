"""Event contracts: schemas, the topic catalog, the Avro codec, the producer/consumer API."""
