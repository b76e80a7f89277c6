"""The PostgreSQL index engine (a cluster's shared index): engine.py implements
holdfast.index.base.Index, schema.py its migrations, lease.py leadership of background jobs,
devserver.py a PostgreSQL of its own for tests and ``holdfast cluster dev``."""
