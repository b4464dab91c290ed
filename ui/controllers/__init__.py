"""One controller per concern of the main window: each is given the state, store, runner and
widgets it needs (never the whole window), so it can be tested with pytest-qt alone."""
