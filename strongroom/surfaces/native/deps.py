"""Annotated dependencies for /v1 routes."""

from typing import Annotated

from fastapi import Depends

from strongroom.principal import Principal
from strongroom.surfaces.native.surface import Principal_

CurrentPrincipal = Annotated[Principal, Depends(Principal_)]
