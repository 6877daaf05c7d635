"""The tracker: exchange websockets in, batched writes to the store out.

``feed`` owns one websocket connection loop per exchange, ``writer`` the single thread that
talks to Redis (ticks, stats, heartbeat, feed events), ``stats`` the counters both share and
``run`` the wiring, signals and the ``bcx tracker`` entry point.
"""
