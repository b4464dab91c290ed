"""Reporting: the PDF report (reportlab) with key images, Lung-RADS suggestion, decisions export."""
