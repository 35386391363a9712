"""The app under test: which app a scenario runs, what its config sets, the app options, advice from the config alone, its handle calls."""
