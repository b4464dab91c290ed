"""Review: the local store, the hash-chained audit trail, users and reading sessions."""
