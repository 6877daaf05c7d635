"""The cold tier: raw history past ``raw_retention`` kept on disk as a Parquet dataset
(:mod:`bcx.coldtier.dataset`), and the one reader that answers "points of (series, field) in
[start, end]" from it and Redis together (:mod:`bcx.coldtier.tiered`)."""
