"""Teaching: de-identified teaching packs with answer keys, and quiz mode for trainees."""
