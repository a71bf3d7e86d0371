"""Cryptography: envelope encryption, key formats, signatures, passwords.

Every primitive comes from ``cryptography`` or ``argon2-cffi``; nothing here is hand-rolled.
"""
