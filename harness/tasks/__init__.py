"""Downstream evaluations; each task module is imported only by the unit that runs it."""
