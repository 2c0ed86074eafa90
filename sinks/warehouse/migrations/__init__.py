"""Versioned warehouse migrations, ``NNNN_name.sql``, applied by `sinks.warehouse.migrate`."""
