"""The native /v1 API."""

from fastapi import APIRouter

from strongroom.surfaces.native import accounts, api_keys, audit, auth, exchanges, users
from strongroom.surfaces.native.surface import SURFACE


def build_router() -> APIRouter:
    root = APIRouter(prefix="/v1")
    for module in (auth, users, exchanges, accounts, api_keys, audit):
        root.include_router(module.api)
    return root


__all__ = ["SURFACE", "build_router"]
