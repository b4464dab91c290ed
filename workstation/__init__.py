"""Workstation: headless core of the offline CT review station.

Importing this package never imports Qt or VTK rendering; `ui/` builds on it.
"""

__version__ = "0.1.0"
