"""Run moto's server (``moto[server]``) on a loopback port, for the AWS KMS tests: ``python moto_kms.py PORT``.

moto imitates KMS. moto 5.2.6 has no ``GetParametersForImport``/``ImportKeyMaterial`` (how a migration
puts the existing pepper into an HMAC key), so this adds the two calls to it, as AWS documents them:
an RSA-2048 wrapping key per request, the material wrapped with RSAES_OAEP_SHA_256, then used as the
key's material (``GenerateMac`` keys its HMAC with it). Everything else is moto's own.
"""

from __future__ import annotations

import base64
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto.kms.responses import KmsResponse
from moto.server import main

_wrapping: dict[str, rsa.RSAPrivateKey] = {}


def get_parameters_for_import(self: KmsResponse) -> str:
    key_id = self.kms_backend.any_id_to_key_id(self._get_param("KeyId"))
    if self.kms_backend.keys[key_id].origin != "EXTERNAL":
        from moto.kms.exceptions import UnsupportedOperationException

        raise UnsupportedOperationException()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _wrapping[key_id] = private
    public = private.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return json.dumps({"KeyId": key_id, "ImportToken": base64.b64encode(b"token-" + key_id.encode()).decode(),
                       "PublicKey": base64.b64encode(public).decode(), "ParametersValidTo": 4102444800})


def import_key_material(self: KmsResponse) -> str:
    key_id = self.kms_backend.any_id_to_key_id(self._get_param("KeyId"))
    wrapped = base64.b64decode(self._get_param("EncryptedKeyMaterial"))
    material = _wrapping.pop(key_id).decrypt(wrapped, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                                    algorithm=hashes.SHA256(), label=None))
    self.kms_backend.keys[key_id].key_material = material
    return json.dumps({})


KmsResponse.get_parameters_for_import = get_parameters_for_import  # type: ignore[attr-defined]
KmsResponse.import_key_material = import_key_material  # type: ignore[attr-defined]

if __name__ == "__main__":
    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
