"""camwatch storage: SQLAlchemy models, migrations and the queries the worker and dashboard share."""
