"""The version of minirnn, in one place: ``pyproject.toml`` reads it from here (setuptools'
``dynamic`` version) and ``minirnn.__version__`` re-exports it. Bump it together with a new
section in CHANGELOG.md."""
__version__ = "0.1.0"
