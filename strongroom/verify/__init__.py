"""Verification of a platform's own requests: "is this request signed by a valid key, whose, with
which scopes?" (POST /v1/keys/verify, forward authentication at /v1/auth/forward, and the
route-to-scope rules of STRONGROOM_FORWARD_RULES). Shares the one authentication pipeline.

``rules`` (the rules file, read by the settings) imports nothing above the scopes; ``service`` is the verifier.
"""
