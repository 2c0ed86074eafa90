"""The shared-document store (共享文档库): documents made from events or received as CDA.

``model``     the `Document` contract between assembly and the store
``assembly``  pure: events in, CDA out (WS/T 500), and de-identification
``schema``    the tables (SQLAlchemy Core) and their migrations
``store``     SQLite or PostgreSQL: documents, parts, groups, the access audit
``sink``      ``hutong.std.*`` to the store (run by the hub as a `SinkRunner`)

Nothing is imported here, so pure assembly does not pull in a database driver.
"""
