"""Volumes, windowing and synthetic phantoms: pure numpy, no DICOM parsing, no Qt."""
