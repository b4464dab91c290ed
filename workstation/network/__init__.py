"""DICOM networking: remote nodes (nodes.py), echo/find/retrieve/send (dimse.py) and the Storage
SCP that files pushed studies into the library (receiver.py)."""
