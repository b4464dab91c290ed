"""Measuring a model on the site's own labelled cases: labels, FROC with intervals, the report."""
