"""Presenting: figures, the HTML report and the terminal's progress and tables."""
