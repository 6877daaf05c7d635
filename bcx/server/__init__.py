"""The alert server: consumes trigger events from the durable stream at least once and
delivers them through notifiers (log, webhook, command), keeping an alert history and a
dead-letter list in Redis.

``history`` is importable on its own (the web app reads the alert history through it); the
consumer and notifiers are imported by ``bcx server`` only.
"""
