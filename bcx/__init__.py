"""BCX: a Redis-centric monitor for crypto markets."""

__version__ = "0.1.0"
