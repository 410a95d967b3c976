"""Configuration, registries, paths, errors, checkpoint files and atomic writes: what every other part builds on."""
