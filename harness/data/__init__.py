"""Dataset access: readers of the official on-disk formats (one module per format), the
dataset catalog and ``verify`` used by ``harness data verify``, and the synthetic benchmark
generator (``harness.data.synthetic``) that writes the same formats."""
