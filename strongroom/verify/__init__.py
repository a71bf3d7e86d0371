"""Verification of a platform's own requests: "is this request signed by a valid key, whose, with
which scopes?" (POST /v1/keys/verify, forward authentication at /v1/auth/forward, and the
route-to-scope rules of STRONGROOM_FORWARD_RULES). Shares the one authentication pipeline."""

from strongroom.verify.rules import ForwardRule, RulesError, load_rules, parse_rules
from strongroom.verify.service import Reason, Verdict, Verifier

__all__ = ["ForwardRule", "Reason", "RulesError", "Verdict", "Verifier", "load_rules", "parse_rules"]
