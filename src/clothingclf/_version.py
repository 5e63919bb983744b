"""The version of clothingclf: a leaf module, so any module may import it."""

__version__ = "0.2.0"
