"""The Avro contracts of hutong: the ``*.avsc`` files, their catalog and the wire-format codec.

- ``schemas.catalog``: every schema with its fixed id, and every Kafka topic with its schema;
- ``schemas.wire``: ``encode`` / ``decode`` in the Confluent wire format;
- ``schemas.registry``: the schema-registry read API of embedded mode, and registration with
  an external registry;
- ``schemas.validation``: the record checks ``encode`` runs first.

The topic catalog for users is ``docs/topics.md``.
"""
