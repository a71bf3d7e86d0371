"""The native /v1 API."""

from strongroom.surfaces.native.surface import ERRORS, surface

__all__ = ["ERRORS", "surface"]
