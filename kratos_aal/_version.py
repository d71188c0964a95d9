"""The version of kratos-aal (pyproject.toml says the same); a leaf, so any floor may read it."""

__version__ = "0.1.0.dev0"
