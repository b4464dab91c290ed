"""DICOM input: find files, read headers, group into series, decode pixels, build Volumes.

pydicom takes 0.15 s to import, more than reading an ordinary series' headers with our own
walker (fastheader.py), so it is imported on first use, through `configured_pydicom`.
"""

import warnings as _warnings

# pydicom warns about every quirk it tolerates; our own named errors and warnings replace them.
_warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")


def configured_pydicom():
    """pydicom, told to skip its own value validation: input comes from arbitrary scanners and
    USB sticks, we validate what we use ourselves, and its checks would only produce noise."""
    import pydicom

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    return pydicom
