"""Analysing: statistics, verdicts, fits and findings over measured points (no files, no I/O).

The lowest floor of the harness. `stats`, `thresholds` and `verdicts` import neither numpy nor
pandas, so the point process can use them under any interpreter.
"""
