"""The small kit every layer shares: settings, errors, auth, ids, logging, metrics."""
