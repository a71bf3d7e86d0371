"""Master keys in AWS KMS (``STRONGROOM_KEY_PROVIDER=aws-kms``; boto3, imported only when this store is
configured; credentials come the usual AWS way: environment, profile, instance role).

Each version is a KMS key reached through the alias ``alias/strongroom-kek-v<N>`` (or named in
``STRONGROOM_AWS_KMS_KEYS``). A data key is wrapped with ``Encrypt`` and opened with ``Decrypt``, the
record's AAD carried as the ``EncryptionContext`` (KMS refuses a Decrypt whose context differs). The
pepper is an HMAC_256 key (``STRONGROOM_AWS_KMS_MAC_KEY_ID``, default ``alias/strongroom-pepper``) used
with ``GenerateMac``; a migration imports the existing pepper into it as key material
(``GetParametersForImport``/``ImportKeyMaterial``). A retired version's alias becomes
``alias/strongroom-retired-kek-v<N>`` (schedule the key's deletion once no backup needs it).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from strongroom.crypto.keyring import DecryptionError, KeyringError, KeySourceUnavailable

ALIAS = "alias/strongroom-kek-v{}"
RETIRED = "alias/strongroom-retired-kek-v{}"
PEPPER = "alias/strongroom-pepper"
_VERSION = re.compile(r"^alias/strongroom-kek-v([1-9][0-9]*)$")
_REFRESH_SECONDS = 10.0
# Refusals that come from the state of a key or of the server's grants, not from the request: see _call
_REFUSALS = frozenset({"DisabledException", "KMSInvalidStateException", "NotFoundException", "AccessDeniedException",
                       "InvalidGrantTokenException"})

for _name in ("botocore", "boto3"):  # their INFO lines ("Found credentials in ...") are noise in our logs
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)


def _context(aad: bytes) -> dict[str, str]:
    try:
        return {"strongroom": aad.decode("ascii")}
    except UnicodeDecodeError:
        return {"strongroom": "b64:" + base64.b64encode(aad).decode()}


class _Refused(KeyringError):
    """KMS answered with a refusal; ``code`` is its error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class KmsKeyStore:
    """Master key versions and the pepper in AWS KMS (see the module's docstring)."""

    name = "aws-kms"

    def __init__(self, *, region: str | None, endpoint_url: str | None, explicit: dict[int, str],
                 key_id: str | None, mac_key_id: str | None) -> None:
        self.explicit = dict(explicit)
        self.key_id = key_id
        self.mac_key_id = mac_key_id or PEPPER
        self._client: Any = boto3.session.Session().client(
            "kms", region_name=region, endpoint_url=endpoint_url,
            config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"}))
        self._lock = threading.Lock()
        self._aliases: dict[int, str] = {}
        self._checked = 0.0
        self._has_pepper: bool | None = None
        self._refresh(force=True)

    def _serve(self, operation: str, **kwargs: Any) -> Any:
        """Call KMS to seal or open a record (or hash a token) for a request, like :meth:`_call`, except that
        KMS refusing for the key's state or the server's permissions (a disabled or deleted key, a revoked
        grant) is KeySourceUnavailable: the request gets a 503 with Retry-After and readiness fails, until the
        operator mends the key; never a 500."""
        try:
            return self._call(operation, **kwargs)
        except KeySourceUnavailable:
            raise
        except _Refused as exc:
            if exc.code in _REFUSALS:
                raise KeySourceUnavailable(str(exc)) from None
            raise

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """Call KMS; a fault reaching it is KeyringError (one line, no secret)."""
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("InvalidCiphertextException", "IncorrectKeyException"):
                raise DecryptionError("data key does not verify") from None
            if code in ("ThrottlingException", "KMSInternalException", "DependencyTimeoutException",
                        "KeyUnavailableException", "ServiceUnavailable", "InternalFailure"):
                raise KeySourceUnavailable(f"AWS KMS cannot serve {operation} now: {code}") from None
            raise _Refused(f"AWS KMS refused {operation}: {code or 'error'}", code) from None
        except BotoCoreError as exc:
            raise KeySourceUnavailable(f"AWS KMS cannot be reached ({type(exc).__name__})") from None

    def _refresh(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._checked < _REFRESH_SECONDS:
                return
            self._checked = time.monotonic()
        found: dict[int, str] = {}
        marker: str | None = None
        while True:
            page = self._call("list_aliases", **({"Marker": marker} if marker else {}))
            for alias in page.get("Aliases", []):
                match = _VERSION.match(alias.get("AliasName", ""))
                if match and alias.get("TargetKeyId"):
                    found[int(match.group(1))] = alias["AliasName"]
            if not page.get("Truncated"):
                break
            marker = page.get("NextMarker")
        with self._lock:
            self._aliases = found

    def _key(self, version: int) -> str:
        key = self.explicit.get(version) or self._aliases.get(version)
        if key is None:
            self._refresh(force=True)
            key = self._aliases.get(version)
        if key is None:
            raise KeyringError(f"unknown master key version {version} (no {ALIAS.format(version)} in AWS KMS)")
        return key

    # --- KeyStore -----------------------------------------------------------------------

    def versions(self) -> list[int]:
        self._refresh()
        return sorted({*self.explicit, *self._aliases})

    def holds(self, version: int) -> bool:
        if version not in self.explicit and version not in self._aliases:
            self._refresh(force=True)
        return version in self.explicit or version in self._aliases

    def wrap(self, version: int, dek: bytes, aad: bytes) -> bytes:
        blob: bytes = self._serve("encrypt", KeyId=self._key(version), Plaintext=dek,
                                 EncryptionContext=_context(aad))["CiphertextBlob"]
        return blob

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        dek: bytes = self._serve("decrypt", KeyId=self._key(version), CiphertextBlob=wrapped,
                                EncryptionContext=_context(aad))["Plaintext"]
        return dek

    def has_pepper(self) -> bool:
        if not self._has_pepper:
            try:
                self._call("describe_key", KeyId=self.mac_key_id)
                self._has_pepper = True
            except KeyringError:
                self._has_pepper = False
        return self._has_pepper

    def mac(self, data: bytes) -> bytes:
        digest: bytes = self._serve("generate_mac", KeyId=self.mac_key_id, Message=data,
                                   MacAlgorithm="HMAC_SHA_256")["Mac"]
        return digest

    def export_pepper(self) -> bytes | None:
        return None

    def import_pepper(self, pepper: bytes | None) -> None:
        """Make the HMAC key holding the pepper: ``pepper`` imported as key material (KMS never gives it
        back), or a new KMS-made one if None. Named by alias ``alias/strongroom-pepper`` unless
        STRONGROOM_AWS_KMS_MAC_KEY_ID names a key."""
        if self.has_pepper():
            raise KeyringError(f"AWS KMS already holds the pepper key {self.mac_key_id}")
        spec = {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC",
                "Description": "Strongroom pepper (token hashes and fingerprints)"}
        if pepper is None:
            key_id = self._call("create_key", **spec)["KeyMetadata"]["KeyId"]
        else:
            key_id = self._call("create_key", Origin="EXTERNAL", **spec)["KeyMetadata"]["KeyId"]
            params = self._call("get_parameters_for_import", KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                WrappingKeySpec="RSA_2048")
            public = load_der_public_key(params["PublicKey"])
            assert isinstance(public, rsa.RSAPublicKey)
            material = public.encrypt(pepper, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                           algorithm=hashes.SHA256(), label=None))
            self._call("import_key_material", KeyId=key_id, ImportToken=params["ImportToken"],
                       EncryptedKeyMaterial=material, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        if self.mac_key_id.startswith("alias/"):
            self._call("create_alias", AliasName=self.mac_key_id, TargetKeyId=key_id)
        else:
            self.mac_key_id = key_id
        self._has_pepper = True

    def create_version(self, version: int) -> None:
        held = self.versions()
        if version in held or (held and version < held[-1]):
            raise KeyringError(f"master key version {version} is not above AWS KMS's versions")
        in_use = {self._call("describe_key", KeyId=self._key(v))["KeyMetadata"]["KeyId"] for v in held}
        key_id = None
        if self.key_id:
            key_id = self._call("describe_key", KeyId=self.key_id)["KeyMetadata"]["KeyId"]
            if key_id in in_use:
                key_id = None  # STRONGROOM_AWS_KMS_KEY_ID already serves a version: a new version is a new key
        if key_id is None:
            key_id = self._call("create_key", KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT",
                                Description=f"Strongroom master key version {version}")["KeyMetadata"]["KeyId"]
        self._call("create_alias", AliasName=ALIAS.format(version), TargetKeyId=key_id)
        self._refresh(force=True)

    def retire_version(self, version: int) -> object:
        if version in self.explicit:
            raise KeyringError(f"version {version} is named in STRONGROOM_AWS_KMS_KEYS: remove it there to retire it")
        alias = ALIAS.format(version)
        key_id = self._call("describe_key", KeyId=alias)["KeyMetadata"]["KeyId"]
        self._call("create_alias", AliasName=RETIRED.format(version), TargetKeyId=key_id)
        self._call("delete_alias", AliasName=alias)
        self._refresh(force=True)
        return key_id

    def restore_version(self, version: int, token: object) -> None:
        if not isinstance(token, str):
            raise KeyringError("not a retired AWS KMS key")
        self._call("create_alias", AliasName=ALIAS.format(version), TargetKeyId=token)
        self._call("delete_alias", AliasName=RETIRED.format(version))
        self._refresh(force=True)

    def check(self) -> None:
        # One KMS call per readiness probe (the current key's state); the aliases are listed again only on
        # their own cadence (_REFRESH_SECONDS), as every other call does.
        held = self.versions()
        if held:
            self._call("describe_key", KeyId=self._key(held[-1]))
