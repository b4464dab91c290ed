"""The DICOM PS3.15 Annex E action table (one pinned edition) and our retained-attribute list."""
