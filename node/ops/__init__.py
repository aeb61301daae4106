"""Running a chamber: backups and restores, the doctor, metrics and structured logs.

``metrics`` is pure (activitypub and jobs import it to count); ``web`` is the middleware and
the ``/metrics`` route; ``backup``, ``doctor`` and ``logs`` serve the ``archipel`` command.
"""
