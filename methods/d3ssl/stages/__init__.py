"""The d3ssl stages, one module per stage."""
