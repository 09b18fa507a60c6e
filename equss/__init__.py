"""equss: a reproducible implementation of EQUSS (Expand-and-Quantize, AAAI 2024)."""

__version__ = "0.1.0"

from equss.errors import EqussError  # noqa: F401
