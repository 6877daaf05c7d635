"""The watcher process: a history manager (roll-ups, retention, archive) and a rule watcher
(alert rules to trigger events), each in its own supervised thread. See ``run.py``."""
