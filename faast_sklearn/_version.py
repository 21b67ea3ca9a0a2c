"""The package version, in one place (read by ``__init__``, pickles and saved files)."""

__version__ = "0.1.0.dev0"
