"""The native /v1 API."""

from strongroom.surfaces.native.surface import ERRORS, NAME, PREFIX, surface

__all__ = ["ERRORS", "NAME", "PREFIX", "surface"]
