"""C2PA content credentials beside the AIGC label: the operator's CA from the CLI, manifests that c2pa's own
reader trusts on that root, and an AIGC label that still verifies on the same final bytes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID
from flask import Flask

from gateway.cli import main
from gateway.demo.upstream import create_demo_upstream
from gateway.labels import aigc, c2pa_credentials
from gateway.labels.c2pa_credentials import CONSENT_ASSERTION, IPTC, SigningMaterial
from gateway.labels.errors import LabelRefused
from gateway.labels.verifier import verify_label
from tests.e2e.conftest import LiveServer
from tests.factories import audit_entries, register_algorithm
from tests.gateway.conftest import (  # noqa: F401 - fixtures used by this module's tests
    FILING,
    Served,
    gateway_server,
    served,
)
from tests.gateway.demo.test_demo_upstream import SOURCE
from tests.gateway.labels import media
from tests.gateway.labels.conftest import CONTEXT, ISSUER, gateway_jwks, label_with
from tests.gateway.labels.test_end_to_end import Gateway

c2pa = pytest.importorskip("c2pa")  # the [c2pa] extra, part of [dev]: present in CI

IMAGES: dict[str, Callable[[], bytes]] = {"png": media.png, "jpeg": media.jpeg}


@pytest.fixture
def ca(app: Flask, tmp_path: Path) -> Path:
    out = tmp_path / "ca"
    result = app.test_cli_runner().invoke(main, ["labels", "ca", "create", "--out", str(out),
                                                 "--name", "Test Operator"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def c2pa_app(configured: Callable[..., Flask], ca: Path) -> Flask:
    return configured(LABEL_C2PA_CERT_CHAIN=str(ca / "c2pa-chain.pem"), LABEL_C2PA_KEY=str(ca / "c2pa-key.pem"))


def read(data: bytes, container: str, root: Path | None) -> dict[str, Any]:
    anchors = root.read_text() if root is not None else None
    return c2pa_credentials.read_manifest(io.BytesIO(data), container, trust_anchors_pem=anchors)


def assertion(report: dict[str, Any], label: str) -> dict[str, Any]:
    [found] = [a["data"] for a in report["manifest"]["assertions"] if a["label"] == label]
    data: dict[str, Any] = found
    return data


def test_the_cli_creates_a_root_and_an_end_entity_certificate_for_c2pa(ca: Path, app: Flask) -> None:
    root = x509.load_pem_x509_certificate((ca / "root.pem").read_bytes())
    [leaf] = x509.load_pem_x509_certificates((ca / "c2pa-chain.pem").read_bytes())
    key = serialization.load_pem_private_key((ca / "c2pa-key.pem").read_bytes(), password=None)

    assert stat.S_IMODE((ca / "c2pa-key.pem").stat().st_mode) == 0o600
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert leaf.public_key() == key.public_key()
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    # Not self-signed: issued by the root, for claim signing, never a CA.
    assert leaf.issuer == root.subject != leaf.subject
    leaf.verify_directly_issued_by(root)
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert c2pa_credentials.C2PA_CLAIM_SIGNING in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert "Test Operator" in leaf.subject.rfc4514_string()

    again = app.test_cli_runner().invoke(main, ["labels", "ca", "create", "--out", str(ca)])
    assert again.exit_code != 0
    assert "will not overwrite" in again.output


@pytest.mark.parametrize("container", IMAGES)
def test_a_labelled_image_carries_a_manifest_trusted_on_the_operators_root(
    c2pa_app: Flask, ca: Path, container: str
) -> None:
    labelled = label_with(c2pa_app, IMAGES[container]())

    report = read(labelled, container, ca / "root.pem")
    assert report["validation_state"] == "Trusted", report["validation_results"]
    assert report["validation_results"]["activeManifest"]["failure"] == []
    [action] = assertion(report, "c2pa.actions.v2")["actions"]
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert assertion(report, CONSENT_ASSERTION) == {
        "decision_id": CONTEXT.decision_id, "client_id": CONTEXT.client_id, "operation": CONTEXT.operation,
        "algorithm": CONTEXT.algorithm, "consents": list(CONTEXT.consents)}
    assert report["manifest"]["signature_info"]["alg"].lower() == "ed25519"

    # The AIGC label signs the same final bytes, manifest included: the verifier and the API say valid.
    label = verify_label(io.BytesIO(labelled), gateway_jwks(c2pa_app), issuer=ISSUER)
    assert label.decision_id == CONTEXT.decision_id
    assert label.content_sha256 != hashlib.sha256(labelled).hexdigest()  # the file without its XMP carrier
    checked = c2pa_app.test_client().post("/v1/labels/verify", data={"file": (io.BytesIO(labelled), "edited")})
    assert checked.get_json()["valid"] is True


def test_a_changed_pixel_breaks_both_the_manifest_and_the_label(c2pa_app: Flask, ca: Path) -> None:
    labelled = bytearray(label_with(c2pa_app, media.png()))
    labelled[labelled.index(b"IDAT") + 12] ^= 0x01

    assert read(bytes(labelled), "png", ca / "root.pem")["validation_state"] == "Invalid"
    checked = c2pa_app.test_client().post("/v1/labels/verify", data={"file": (io.BytesIO(bytes(labelled)), "edited")})
    assert checked.get_json()["error"]["code"] == "label_content_mismatch"


def test_trust_comes_from_the_root_the_verifier_chooses(c2pa_app: Flask, tmp_path: Path) -> None:
    labelled = label_with(c2pa_app, media.png())
    other = c2pa_credentials.create_ca(tmp_path / "other", "Someone Else", now=dt.datetime.now(dt.UTC))

    report = read(labelled, "png", other.root)
    assert report["validation_state"] != "Trusted"
    assert "signingCredential.untrusted" in {
        failure["code"] for failure in report["validation_results"]["activeManifest"]["failure"]}


def test_a_self_signed_certificate_is_refused_so_the_ca_matters(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "self-signed signer")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False, key_agreement=False,
                                                key_cert_sign=False, crl_sign=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([c2pa_credentials.C2PA_CLAIM_SIGNING,
                                                         ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                   .sign(key, None))
    material = SigningMaterial(certificate.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    labelled = label_with_placeholder(media.png())

    with pytest.raises(LabelRefused, match="C2PA manifest cannot be signed"):
        c2pa_credentials.embed_manifest(labelled, "png", _provenance(), material)


def label_with_placeholder(data: bytes) -> io.BytesIO:
    from gateway.labels import containers

    written = containers.write_label("png", io.BytesIO(data), "x" * 200, io.BytesIO)
    assert isinstance(written, io.BytesIO)
    return written


def _provenance(operation: str = "face_swap") -> aigc.Provenance:
    return aigc.Provenance(decision_id=CONTEXT.decision_id, client_id=CONTEXT.client_id, operation=operation,
                           algorithm=CONTEXT.algorithm, consents=tuple(CONTEXT.consents))


def test_voice_outputs_are_declared_wholly_generated_by_a_trained_algorithm() -> None:
    actions = c2pa_credentials.manifest_definition(_provenance("voice_clone"))["assertions"][0]["data"]["actions"]
    assert actions[0]["digitalSourceType"] == IPTC + "trainedAlgorithmicMedia"
    face = c2pa_credentials.manifest_definition(_provenance("face_reenactment"))["assertions"][0]["data"]["actions"]
    assert face[0]["digitalSourceType"] == IPTC + "compositeWithTrainedAlgorithmicMedia"


def test_audio_and_unconfigured_gateways_get_the_aigc_label_only(c2pa_app: Flask, app: Flask) -> None:
    wav = label_with(c2pa_app, media.wav(), dataclasses.replace(CONTEXT, operation="voice_clone"))
    assert verify_label(io.BytesIO(wav), gateway_jwks(c2pa_app), issuer=ISSUER).container == "wav"
    assert b"c2pa" not in wav

    plain = label_with(app, media.png())
    assert b"caBX" not in plain
    with pytest.raises(c2pa.C2paError):
        read(plain, "png", None)


def test_without_the_extra_the_output_is_labelled_as_before_and_the_log_says_so(
    configured: Callable[..., Flask], ca: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(c2pa_credentials, "available", lambda name: name != "c2pa")
    app = configured(LABEL_C2PA_CERT_CHAIN=str(ca / "c2pa-chain.pem"), LABEL_C2PA_KEY=str(ca / "c2pa-key.pem"))

    with caplog.at_level(logging.WARNING, logger=c2pa_credentials.__name__):
        first, second = label_with(app, media.png()), label_with(app, media.png())
    assert b"caBX" not in first + second
    assert verify_label(io.BytesIO(first), gateway_jwks(app), issuer=ISSUER).decision_id == CONTEXT.decision_id
    assert [r.message for r in caplog.records if "[c2pa] extra" in r.message] != []
    assert len([r for r in caplog.records if "[c2pa] extra" in r.message]) == 1


def test_a_key_that_is_not_the_certificates_is_refused(configured: Callable[..., Flask], ca: Path,
                                                        tmp_path: Path) -> None:
    other = c2pa_credentials.create_ca(tmp_path / "other", "Other", now=dt.datetime.now(dt.UTC))
    app = configured(LABEL_C2PA_CERT_CHAIN=str(ca / "c2pa-chain.pem"), LABEL_C2PA_KEY=str(other.key))

    with pytest.raises(LabelRefused, match="not the key of the first certificate"):
        label_with(app, media.png())


@pytest.mark.e2e
def test_through_the_proxy_the_app_gets_both_and_the_outcome_names_those_bytes(
    gateway_server: Callable[..., LiveServer], served: Callable[[Any], Served], ca: Path, tmp_path: Path  # noqa: F811
) -> None:
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    gateway = Gateway(gateway_server(UPLOAD_DIR=str(upload_dir), UPSTREAM_TIMEOUT_SECONDS=5,
                                     LABEL_C2PA_CERT_CHAIN=str(ca / "c2pa-chain.pem"),
                                     LABEL_C2PA_KEY=str(ca / "c2pa-key.pem")), upload_dir)
    upstream = create_demo_upstream(issuer=gateway.url, jwks=f"{gateway.url}/.well-known/jwks.json",
                                    filing_number=FILING)
    register_algorithm(gateway.app, FILING, upstream_url=served(upstream).url + "/edit", name="Reference Editor")

    response, consent_id = gateway.edit("face_attribute_edit", {"target": ("me.png", SOURCE, "image/png")})

    assert response.status_code == 200, response.text
    decision_id = response.headers["Consent-Decision"]
    report = read(response.content, "png", ca / "root.pem")
    assert report["validation_state"] == "Trusted", report["validation_results"]
    assert assertion(report, CONSENT_ASSERTION)["decision_id"] == decision_id
    assert assertion(report, CONSENT_ASSERTION)["consents"] == [consent_id]
    assert gateway.verify(response.content).json()["valid"] is True
    [completed] = audit_entries(gateway.app, "decision.completed")
    assert completed["output_sha256"] == hashlib.sha256(response.content).hexdigest()
