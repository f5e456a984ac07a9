"""Files: scenario files in, run folders (meta.json, points.csv, histograms) out and back."""
