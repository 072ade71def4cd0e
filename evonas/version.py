"""The evonas version (its own module: importing the package root would load the API)."""
__version__ = "0.2.0"
