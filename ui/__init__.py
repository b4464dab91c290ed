"""PySide6/VTK desktop application (issue #3). Imports `workstation`; the core never imports this."""
