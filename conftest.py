"""The serve-chaos pytest plugin loads through its ``pytest11`` entry point (pyproject.toml) once the
project is installed (``./setup.sh``), here as in a user's repository: nothing to load by hand."""
