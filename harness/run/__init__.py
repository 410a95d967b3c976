"""Running a configuration: planning units, launching their processes, the unit process itself, status."""
