"""DICOM input: find files, read headers, group into series, decode pixels, build Volumes."""

from pydicom import config as _pydicom_config

# Input comes from arbitrary scanners and USB sticks: we validate what we use ourselves,
# so pydicom's own value validation would only produce noise (and is slow).
_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE

import warnings as _warnings

# pydicom warns about every quirk it tolerates; our own named errors and warnings replace them.
_warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")
