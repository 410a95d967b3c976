"""The orl stages, one module per stage."""
