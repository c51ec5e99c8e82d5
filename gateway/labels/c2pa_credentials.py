"""C2PA content credentials: a signed C2PA manifest in every labelled PNG and JPEG, beside the AIGC label.

An addition to the GB 45438-2025 label, never a replacement: with the ``[c2pa]`` extra (c2pa-python)
installed and ``LABEL_C2PA_CERT_CHAIN`` / ``LABEL_C2PA_KEY`` set, :func:`add_content_credentials` puts a
manifest into the output; without the extra nothing changes (said once in the log), and other containers
(WAV, MP3, MP4) carry the AIGC label only. docs/LABELS.md "C2PA content credentials" has the format.

The two signatures would each cover the other (the AIGC label's digest covers every byte but its XMP
carrier, a C2PA hard binding every byte but the manifest), so the order is fixed:

1. the AIGC label is written with its placeholder signature (its carrier has its final size and place);
2. the manifest goes right after that carrier, its data hash excluding the manifest *and the carrier*;
3. the AIGC label's digest is taken on that file (manifest included) and the signature is written into
   the carrier in place, which the manifest's hash does not cover.

So both verify on the final bytes, and the app gets exactly those. c2pa-python 0.38 wraps only
``Builder.sign``, which hashes the XMP too, so the data-hashed placeholder API of the same native library
(c2pa-rs ``c2pa_builder_data_hashed_placeholder`` / ``c2pa_builder_sign_data_hashed_embeddable``) is called
here through ctypes; the extra pins c2pa-python to 0.38.x for that reason.

``create_ca`` makes the operator's private root and end-entity certificate (``consent-gateway labels ca
create``): C2PA refuses self-signed signing certificates, and trust is anchored on the root.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime as dt
import importlib
import io
import json
import logging
import os
import struct
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from flask import Flask

from gateway.core.config import ConfigError
from gateway.labels import aigc, containers
from gateway.labels._optional import available
from gateway.labels.errors import LabelRefused
from gateway.labels.verifier import XMP_JPEG_HEADER, XMP_PNG_KEYWORD

log = logging.getLogger(__name__)

__all__ = [
    "CONSENT_ASSERTION",
    "CONTAINERS",
    "SigningMaterial",
    "add_content_credentials",
    "create_ca",
    "embed_manifest",
    "read_manifest",
]

CONSENT_ASSERTION = "cn.consent-gateway.consent"
CONTAINERS = {"png": "image/png", "jpeg": "image/jpeg"}
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# The C2PA trust model's claim-signing EKU (c2pa-kp-claimSigning); c2pa-rs's default trust configuration
# also accepts id-kp-emailProtection and id-kp-documentSigning, and refuses anyExtendedKeyUsage.
C2PA_CLAIM_SIGNING = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")

_EXT = "consent_gateway.labels.c2pa"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SHIFT = 1024 * 1024


@dataclass(frozen=True)
class SigningMaterial:
    """The operator's C2PA signing certificate chain (end-entity first) and its Ed25519 private key, PEM."""

    cert_chain_pem: bytes
    private_key_pem: bytes
    tsa_url: str | None = None

    @classmethod
    def from_files(cls, cert_chain: str, key: str) -> SigningMaterial:
        """Read and check the pair: a chain that parses, an Ed25519 key, and the key of its first certificate."""
        try:
            chain_pem, key_pem = Path(cert_chain).read_bytes(), Path(key).read_bytes()
            chain = x509.load_pem_x509_certificates(chain_pem)
            private_key = serialization.load_pem_private_key(key_pem, password=None)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"LABEL_C2PA_CERT_CHAIN / LABEL_C2PA_KEY cannot be read: {exc}") from exc
        if not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise ConfigError("LABEL_C2PA_KEY is not an Ed25519 private key (the gateway signs C2PA with ed25519)")
        if chain[0].public_key() != private_key.public_key():
            raise ConfigError("LABEL_C2PA_KEY is not the key of the first certificate of LABEL_C2PA_CERT_CHAIN")
        return cls(chain_pem, key_pem)


def add_content_credentials(app: Flask, carrier: containers.Carrier, provenance: aigc.Provenance) -> containers.Carrier:
    """The proxy's step, between the placeholder label and its digest: :func:`embed_manifest` into
    ``carrier.media`` when C2PA is configured, the extra installed and the container PNG or JPEG.

    The carrier to go on with: the same one when nothing was added; otherwise the same place in the same
    file, without the digest taken while it was written (it no longer covers the file, so the label's
    digest is taken again, and the label verified in full).
    """
    material = _material_of(app)
    if material is None or carrier.container not in CONTAINERS:
        return carrier
    embed_manifest(carrier.media, carrier.container, provenance, material)
    return dataclasses.replace(carrier, content_sha256=None)


def _material_of(app: Flask) -> SigningMaterial | None:
    # Read once per app; a missing extra is an operator's choice, so it is logged, not refused.
    if _EXT not in app.extensions:
        chain, key = str(app.config.get("LABEL_C2PA_CERT_CHAIN") or ""), str(app.config.get("LABEL_C2PA_KEY") or "")
        material = None
        if bool(chain) != bool(key):
            raise LabelRefused("set both LABEL_C2PA_CERT_CHAIN and LABEL_C2PA_KEY, or neither")
        if chain and not available("c2pa"):
            log.warning("LABEL_C2PA_CERT_CHAIN is set but the [c2pa] extra (c2pa-python) is not installed: "
                        "outputs carry the AIGC label without a C2PA manifest")
        elif chain:
            try:
                material = SigningMaterial.from_files(chain, key)
            except ConfigError as exc:
                # Found at the first edit, not at start: refused like any output that cannot be labelled.
                raise LabelRefused(str(exc)) from exc
        app.extensions[_EXT] = material
    found = app.extensions[_EXT]
    return found if isinstance(found, SigningMaterial) else None


def manifest_definition(provenance: aigc.Provenance) -> dict[str, Any]:
    """The manifest: who made it, a ``c2pa.created`` action by a trained algorithm, and the consent assertion.

    ``c2pa.created``, not ``c2pa.edited``: an edit needs its input as the parent ingredient, and the input is
    the subject's face or voice, which the gateway does not copy into every output.
    """
    source_type = "compositeWithTrainedAlgorithmicMedia" if provenance.operation.startswith("face_") \
        else "trainedAlgorithmicMedia"
    return {
        "claim_generator_info": [{"name": "consent-gateway", "version": _version()}],
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": IPTC + source_type,
                "parameters": {"operation": provenance.operation, "algorithm": provenance.algorithm},
            }]}},
            {"label": CONSENT_ASSERTION, "data": {
                "decision_id": provenance.decision_id,
                "client_id": provenance.client_id,
                "operation": provenance.operation,
                "algorithm": provenance.algorithm,
                "consents": list(provenance.consents),
            }},
        ],
    }


def embed_manifest(media: IO[bytes], container: str, provenance: aigc.Provenance, material: SigningMaterial) -> None:
    """Insert a signed manifest into the AIGC-labelled ``media``, in place, right after the label's XMP carrier.

    Its data hash covers every byte but the manifest and that carrier, so the AIGC signature can be written
    into the carrier afterwards. Checked before returning (signature and hash; not trust, which is the reader's).
    """
    c2pa = _c2pa()
    mime = CONTAINERS[container]
    carrier, carrier_size = _xmp_carrier(media, container)
    at = carrier + carrier_size
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
            "ed25519", material.cert_chain_pem, material.private_key_pem, material.tsa_url))
        # No thumbnail: the output itself is the picture, and a copy would double the file.
        builder = c2pa.Builder(manifest_definition(provenance),
                               context=c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
        with signer, builder:
            placeholder = _native_bytes("c2pa_builder_data_hashed_placeholder", builder._handle,
                                        ctypes.c_size_t(signer.reserve_size()), mime.encode())
            _insert(media, at, placeholder)
            data_hash = {"name": "jumbf manifest", "alg": "sha256", "hash": [], "pad": [],
                         "exclusions": [{"start": carrier, "length": carrier_size},
                                        {"start": at, "length": len(placeholder)}]}
            media.seek(0)
            stream = c2pa.Stream(media)
            with stream:
                signed = _native_bytes("c2pa_builder_sign_data_hashed_embeddable", builder._handle, signer._handle,
                                       json.dumps(data_hash).encode(), mime.encode(), stream._stream)
    except c2pa.C2paError as exc:
        raise LabelRefused(f"the C2PA manifest cannot be signed: {exc}") from exc
    if len(signed) != len(placeholder):
        raise LabelRefused("the signed C2PA manifest does not fit its placeholder")
    media.seek(at)
    media.write(signed)
    report = read_manifest(media, container)
    if report["validation_state"] not in ("Valid", "Trusted"):
        raise LabelRefused(f"the C2PA manifest does not verify: {report['validation_results']}")


def read_manifest(media: IO[bytes], container: str, *, trust_anchors_pem: str | None = None) -> dict[str, Any]:
    """The active manifest, ``validation_state`` (``Trusted`` only with ``trust_anchors_pem``) and
    ``validation_results``, as c2pa's reader gives them. Without anchors, trust is not checked."""
    c2pa = _c2pa()
    settings: dict[str, Any] = {"verify": {"verify_trust": trust_anchors_pem is not None}}
    if trust_anchors_pem is not None:
        settings["trust"] = {"trust_anchors": trust_anchors_pem}
    media.seek(0)
    data = media.read()
    with c2pa.Reader(CONTAINERS[container], io.BytesIO(data), context=c2pa.Context.from_dict(settings)) as reader:
        return {"validation_state": reader.get_validation_state(),
                "validation_results": reader.get_validation_results(),
                "manifest": reader.get_active_manifest()}


# --- the certificate authority -------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateAuthority:
    root: Path
    cert_chain: Path
    key: Path


def create_ca(out: Path, name: str, *, now: dt.datetime, leaf_days: int = 365,
              root_days: int = 3650) -> CertificateAuthority:
    """A private root (Ed25519, CA, keyCertSign/cRLSign) and the end-entity certificate that signs manifests.

    Writes ``root.pem`` (the trust anchor verifiers configure), ``c2pa-chain.pem`` (the end-entity
    certificate alone: c2pa-rs wants the chain from the signer up to, not including, the anchor) and
    ``c2pa-key.pem`` (mode 0600). The root's private key is not kept: a new end-entity certificate
    means a new CA, which keeps no CA key lying around next to the gateway.
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = CertificateAuthority(out / "root.pem", out / "c2pa-chain.pem", out / "c2pa-key.pem")
    existing = [str(p) for p in (paths.root, paths.cert_chain, paths.key) if p.exists()]
    if existing:
        raise FileExistsError(f"will not overwrite {', '.join(existing)}")
    root_key, leaf_key = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    root_name = _name(f"{name} C2PA Root CA", name)
    start = now - dt.timedelta(minutes=5)  # tolerate a verifier's clock a little behind
    root = (_certificate(root_name, root_name, root_key.public_key(), start, now + dt.timedelta(days=root_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .sign(root_key, None))
    leaf = (_certificate(_name(f"{name} C2PA signer", name), root_name, leaf_key.public_key(), start,
                         now + dt.timedelta(days=leaf_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([C2PA_CLAIM_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, None))
    paths.root.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    paths.cert_chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    descriptor = os.open(paths.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return paths


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key: ed25519.Ed25519PublicKey,
                 start: dt.datetime, end: dt.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                         crl_sign=crl_sign, encipher_only=False, decipher_only=False)


# --- internals -----------------------------------------------------------------------------------


def _c2pa() -> ModuleType:
    # Imported here only, when used: the extra is optional (and ships no type information).
    return importlib.import_module("c2pa")


def _native_bytes(function: str, *args: Any) -> bytes:
    """Call a c2pa-rs FFI function that returns bytes (length, out-pointer last) that c2pa-python does not wrap."""
    native = _c2pa().c2pa
    call = getattr(native._lib, function)
    out = ctypes.POINTER(ctypes.c_ubyte)()
    call.restype = ctypes.c_int64
    size = call(*args, ctypes.byref(out))
    native._check_ffi_operation_result(size, f"{function} failed", check=lambda result: result < 0)
    try:
        return ctypes.string_at(out, size)
    finally:
        native._lib.c2pa_free(out)


def _xmp_carrier(media: IO[bytes], container: str) -> tuple[int, int]:
    """Offset and size of the AIGC label's XMP carrier: the PNG ``iTXt`` chunk or the JPEG APP1 segment."""
    media.seek(0)
    if container == "png":
        if media.read(8) != _PNG_SIGNATURE:
            raise LabelRefused("not a PNG file")
        while len(head := media.read(8)) == 8:
            start = media.tell() - 8
            length, kind = struct.unpack(">I4s", head)
            if kind == b"iTXt" and media.read(len(XMP_PNG_KEYWORD) + 1) == XMP_PNG_KEYWORD + b"\x00":
                return start, length + 12
            media.seek(start + length + 12)
    else:
        if media.read(2) != b"\xff\xd8":
            raise LabelRefused("not a JPEG file")
        while len(head := media.read(4)) == 4 and head[0] == 0xFF and head[1] not in (0xDA, 0xD9):
            (length,) = struct.unpack(">H", head[2:])
            start = media.tell() - 4
            if head[1] == 0xE1 and media.read(len(XMP_JPEG_HEADER)) == XMP_JPEG_HEADER:
                return start, length + 2
            media.seek(start + length + 2)
    raise LabelRefused(f"the {container} output has no AIGC label to put the C2PA manifest after")


def _insert(media: IO[bytes], at: int, data: bytes) -> None:
    """Insert ``data`` at ``at`` in place, moving the rest of the file from its end backwards."""
    end = media.seek(0, io.SEEK_END)
    position = end
    while position > at:
        start = max(at, position - _SHIFT)
        media.seek(start)
        chunk = media.read(position - start)
        media.seek(start + len(data))
        media.write(chunk)
        position = start
    media.seek(at)
    media.write(data)


def _version() -> str:
    try:
        return metadata.version("biometric-consent-gateway")
    except metadata.PackageNotFoundError:
        return "0"
