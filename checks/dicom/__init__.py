"""DICOM checks (pynetdicom behind the check context)."""
