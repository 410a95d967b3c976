"""The contracam stages, one module per stage."""
