"""Storage: the engine, the models and every SQL statement taskchat runs."""
