"""Helpers for services that use Strongroom's keys; imported by nothing in the server."""
