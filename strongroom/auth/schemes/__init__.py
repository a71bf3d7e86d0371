"""Authentication schemes: small strategy objects a surface declares, tried in order."""

from strongroom.auth.schemes.base import AuthScheme, Refused
from strongroom.auth.schemes.basic import BasicScheme
from strongroom.auth.schemes.bearer import BearerKeyScheme
from strongroom.auth.schemes.signed import KALSHI, NATIVE, Algorithm, SignedScheme, threecommas
from strongroom.auth.schemes.token import AccessTokenScheme

__all__ = ["KALSHI", "NATIVE", "AccessTokenScheme", "Algorithm", "AuthScheme", "BasicScheme", "BearerKeyScheme",
           "Refused", "SignedScheme", "threecommas"]
