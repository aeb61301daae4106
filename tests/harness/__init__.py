"""The test harness, written once (registered by ``tests/conftest.py`` as a pytest plugin).

- ``databases``: throwaway PostgreSQL databases (migrated, or copied from a migrated
  template), emptying one between tests over a connection kept for the run.
- ``engines``: one compiled-statement cache shared by every engine of the run.
- ``keys``: actor keys generated once a run and handed out in order.
- ``network``: ``HostRouter``, the httpx transport that hands each request to the in-process
  app of its host (and can refuse chosen requests, and records what was sent).
- ``chambers``: an app without background worker (``quiet_app``) and an archipelago of N
  in-process chambers, each on its own database, wired to one another through a ``HostRouter``.
- ``clock``: a fixed clock a test moves by hand.
- ``plugin``: the fixtures: ``federation_transport`` (what the ``app`` fixture's federation
  sends through; ``None`` is the guarded network), ``second_database_url``, ``clock``,
  ``archipelago`` (a factory of N in-process chambers) and the run's shared resources
  (``shared_compiled_cache``, ``postgres_template``, ``postgres_emptier``); and
  ``module_databases``, databases of their own for chambers a module's tests share.

Real processes (the federation tests and the demo) share one launcher, ``demo/launcher.py``.
"""
