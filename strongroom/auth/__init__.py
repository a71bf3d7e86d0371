"""Authentication: request facts, the pipeline, and the schemes surfaces declare."""

from strongroom.auth.facts import RawHeaders, RequestFacts, client_ip
from strongroom.auth.pipeline import Authenticator

__all__ = ["Authenticator", "RawHeaders", "RequestFacts", "client_ip"]
