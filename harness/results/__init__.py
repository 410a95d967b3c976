"""Records and everything computed from them: the store, per-item tables, statistics, comparisons, claims and leaderboards."""
