"""A small HTTP kit the surfaces are built with, in the spirit of Starlette's own modules.

* ``errors``: a surface's error table (rules by exception class) and what framework, database and edge
  errors stand for;
* ``gate``: the auth gate (authenticate, then the route's guard, before the body is read);
* ``edge``: the edge guard every request passes first (size limits, control characters, duplicate JSON
  keys, the request id, common headers);
* ``routes``: route declarations (``Surface``, ``@guarded``, ``@direct``), ``build``, ``LazySurface`` (a surface
  built on its first request) and ``mount``.

Adding a surface is one package under ``strongroom/surfaces/`` declaring a ``Surface``: shape mapping only.
"""
