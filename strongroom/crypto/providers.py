"""The configured master key sources (:class:`KeyChain`) from the settings.

The key file (or ``STRONGROOM_MASTER_KEYS``), an HSM (PKCS#11) and AWS KMS can be configured at once:
``STRONGROOM_KEY_PROVIDER`` names the primary one (new versions, the pepper); the others stay
readable so records sealed under their versions open until ``master-key migrate`` has moved them.
python-pkcs11 and boto3 are imported only when their source is configured.
"""

from __future__ import annotations

from strongroom.crypto.keyring import FileKeyProvider, KeyChain, KeyStore, StaticKeyProvider
from strongroom.settings import Settings, kms_versions


def pkcs11_configured(settings: Settings) -> bool:
    return settings.key_provider == "pkcs11" or bool(settings.pkcs11_library)


def kms_configured(settings: Settings) -> bool:
    return settings.key_provider == "aws-kms" or any((settings.aws_kms_key_id, settings.aws_kms_keys, settings.aws_kms_region,
                                                      settings.aws_kms_mac_key_id, settings.aws_kms_endpoint_url))


def build_store(settings: Settings, name: str) -> KeyStore:
    """Return the store ``name`` ("file", "pkcs11", "aws-kms") from the settings. Raises KeyringError."""
    if name == "pkcs11":
        from strongroom.crypto.pkcs11keys import pkcs11_store

        pin = settings.pkcs11_pin.get_secret_value() if settings.pkcs11_pin else None
        return pkcs11_store(settings.pkcs11_library, settings.pkcs11_token_label, pin, settings.pkcs11_pin_file)
    if name == "aws-kms":
        from strongroom.crypto.kmskeys import KmsKeyStore

        return KmsKeyStore(region=settings.aws_kms_region, endpoint_url=settings.aws_kms_endpoint_url,
                           explicit=kms_versions(settings.aws_kms_keys or ""), key_id=settings.aws_kms_key_id,
                           mac_key_id=settings.aws_kms_mac_key_id)
    if settings.master_keys:
        return StaticKeyProvider(settings.master_keys)
    return FileKeyProvider(settings.effective_master_key_file)


def build_keys(settings: Settings) -> KeyChain:
    """Return every configured key source, the primary first. Raises KeyringError (one line).

    The key file is created on first use when it is the primary source; an HSM or KMS primary that
    holds nothing yet is set up by :func:`initialise` (the caller checks first that no record needs
    another version).
    """
    names = [settings.key_provider]
    file_there = bool(settings.master_keys) or settings.effective_master_key_file.exists()
    if settings.key_provider != "file" and file_there:
        names.append("file")
    if settings.key_provider != "pkcs11" and pkcs11_configured(settings):
        names.append("pkcs11")
    if settings.key_provider != "aws-kms" and kms_configured(settings):
        names.append("aws-kms")
    stores = [build_store(settings, name) for name in names]
    return KeyChain(stores[0], stores[1:])


def initialise(chain: KeyChain) -> None:
    """Give a fresh HSM or KMS primary its first version and, if no source holds one, a pepper of its own."""
    if not any(store.has_pepper() for store in chain.stores):
        chain.primary.import_pepper(None)
    chain.rotate()
