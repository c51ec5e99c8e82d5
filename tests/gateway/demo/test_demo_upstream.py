"""The reference upstream: refuses every edit without a valid ticket, and really edits with one."""

from __future__ import annotations

import array
import dataclasses
import hashlib
import io
import math
import wave
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from PIL import Image, ImageChops, ImageDraw

from consent import jws, records
from gateway.demo import media_edits
from gateway.demo.upstream import CachedJwks, create_demo_upstream
from tests.consent.signers import ISSUER, KeySigner, public_jwk

FILING = "GD-DEMO-0001"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NOW = T0.timestamp() + 1
JWKS_URL = "http://gateway.test/.well-known/jwks.json"


def portrait(background: tuple[int, int, int], skin: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    image = Image.new("RGB", (240, 320), background)
    draw = ImageDraw.Draw(image)
    draw.ellipse((70, 70, 170, 200), fill=skin)
    draw.ellipse((95, 115, 110, 127), fill=(0, 0, 0))
    draw.ellipse((130, 115, 145, 127), fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def tone(frequency: float, *, rate: int = 8000, seconds: float = 0.5, channels: int = 1, width: int = 2) -> bytes:
    peak = 2 ** (8 * width - 1) - 1
    offset = 128 if width == 1 else 0
    samples = array.array(
        {1: "B", 2: "h", 4: "i"}[width],
        (
            round(0.5 * peak * math.sin(2 * math.pi * frequency * i / rate)) + offset
            for i in range(int(rate * seconds))
            for _ in range(channels)
        ),
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def energy_at(wav: bytes, frequency: float) -> float:
    """Goertzel power of the first channel at ``frequency``, normalised per sample."""
    with wave.open(io.BytesIO(wav)) as reader:
        rate, channels, width = reader.getframerate(), reader.getnchannels(), reader.getsampwidth()
        samples = array.array({1: "B", 2: "h", 4: "i"}[width], reader.readframes(reader.getnframes()))
    signal = [s - (128 if width == 1 else 0) for s in samples[::channels]]
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in signal:
        previous, before = sample + coefficient * previous - before, previous
    return (previous**2 + before**2 - coefficient * previous * before) / len(signal) ** 2


SOURCE = portrait((30, 120, 30), (250, 200, 160))
TARGET = portrait((40, 60, 160), (150, 100, 70), fmt="JPEG")
AUDIO = tone(220)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def ticket_signer() -> KeySigner:
    return KeySigner(kid="k-gw-1", issuer=ISSUER, private_key=Ed25519PrivateKey.generate())


@pytest.fixture
def upstream(ticket_signer: KeySigner) -> FlaskClient:
    jwks = {"keys": [public_jwk(ticket_signer)]}
    return create_demo_upstream(issuer=ISSUER, jwks=lambda: jwks, filing_number=FILING, clock=lambda: NOW).test_client()


def ticket(signer: KeySigner, operation: str, media: dict[str, bytes], **changes: Any) -> str:
    spec = records.TicketSpec(
        decision_id=records.new_id("dec"),
        algorithm=FILING,
        client_id="faceapp",
        operation=operation,
        consent_ids=("cns_AAAAAAAAAAAAAAAAAAAAAAAA",),
        media={role: sha(data) for role, data in media.items()},
        issued_at=T0,
        expires_at=T0 + timedelta(seconds=60),
    )
    return jws.sign(
        records.ticket_claims(dataclasses.replace(spec, **changes), issuer=ISSUER), signer, records.TICKET_TYP
    )


def post(client: FlaskClient, media: dict[str, bytes], ticket_value: str | None) -> Any:
    headers = {} if ticket_value is None else {"Consent-Ticket": ticket_value}
    files = {role: (io.BytesIO(data), f"{role}.bin") for role, data in media.items()}
    return client.post("/edit", data=files, headers=headers, content_type="multipart/form-data")


def assert_problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.content_type == "application/problem+json"
    body = response.get_json(force=True)
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith("/" + code)


# --- edits with a valid ticket ----------------------------------------------------------------------


def test_face_swap_puts_the_source_face_on_the_target_and_leaves_the_mark_to_the_gateway(
    upstream: FlaskClient, ticket_signer: KeySigner
) -> None:
    media = {"source": SOURCE, "target": TARGET}
    response = post(upstream, media, ticket(ticket_signer, "face_swap", media))

    assert response.status_code == 200
    assert response.content_type == "image/png"
    assert response.headers["Cache-Control"] == "no-store"
    edited = Image.open(io.BytesIO(response.data)).convert("RGB")
    target = Image.open(io.BytesIO(TARGET)).convert("RGB")
    assert edited.size == target.size
    assert edited.getpixel((120, 150)) == pytest.approx((250, 200, 160), abs=12)  # the source's skin
    assert edited.getpixel((10, 10)) == target.getpixel((10, 10))  # background untouched
    # No mark of its own: the gateway marks and labels every output it relays (tests/gateway/labels).
    corner = (edited.width - 6, edited.height - 6)
    assert edited.getpixel(corner) == target.getpixel(corner)
    assert b"AIGC" not in response.data


def test_face_attribute_edit_restyles_only_the_target(upstream: FlaskClient, ticket_signer: KeySigner) -> None:
    media = {"target": TARGET}
    response = post(upstream, media, ticket(ticket_signer, "face_attribute_edit", media))

    assert response.status_code == 200
    edited = Image.open(io.BytesIO(response.data)).convert("RGB")
    target = Image.open(io.BytesIO(TARGET)).convert("RGB")
    difference = ImageChops.difference(edited, target).convert("L")
    changed = difference.getpixel((120, 150))
    assert isinstance(changed, int)
    assert changed > 20
    assert difference.getpixel((10, 10)) == 0


@pytest.mark.parametrize("operation", ["voice_clone", "voice_conversion", "voice_edit"])
def test_voice_operations_shift_the_pitch_and_keep_the_duration(
    upstream: FlaskClient, ticket_signer: KeySigner, operation: str
) -> None:
    media = {"audio": AUDIO}
    response = post(upstream, media, ticket(ticket_signer, operation, media))

    assert response.status_code == 200
    assert response.content_type == "audio/wav"
    with wave.open(io.BytesIO(response.data)) as edited, wave.open(io.BytesIO(AUDIO)) as original:
        assert edited.getparams() == original.getparams()
    assert energy_at(response.data, 220) < energy_at(AUDIO, 220) / 10


# --- refusals ---------------------------------------------------------------------------------------


def test_no_ticket_no_edit(upstream: FlaskClient) -> None:
    response = post(upstream, {"audio": AUDIO}, None)
    assert_problem(response, 401, "ticket_missing")
    assert response.headers["WWW-Authenticate"] == "Consent-Ticket"


def test_a_forged_ticket_is_refused(upstream: FlaskClient) -> None:
    forger = KeySigner(kid="k-gw-1", issuer=ISSUER, private_key=Ed25519PrivateKey.generate())
    media = {"audio": AUDIO}
    assert_problem(post(upstream, media, ticket(forger, "voice_edit", media)), 403, "ticket_bad_signature")


def test_garbage_in_the_header_is_refused(upstream: FlaskClient) -> None:
    assert_problem(post(upstream, {"audio": AUDIO}, "not-a-ticket"), 403, "ticket_malformed")


def test_a_ticket_for_other_media_is_refused(upstream: FlaskClient, ticket_signer: KeySigner) -> None:
    authorised = {"source": SOURCE, "target": TARGET}
    sent = {"source": portrait((0, 0, 0), (255, 255, 255)), "target": TARGET}
    assert_problem(post(upstream, sent, ticket(ticket_signer, "face_swap", authorised)), 403, "ticket_media_mismatch")


def test_a_ticket_for_another_algorithm_is_refused(upstream: FlaskClient, ticket_signer: KeySigner) -> None:
    media = {"audio": AUDIO}
    assert_problem(
        post(upstream, media, ticket(ticket_signer, "voice_edit", media, algorithm="GD-OTHER")),
        403,
        "ticket_wrong_audience",
    )


def test_an_expired_ticket_is_refused(ticket_signer: KeySigner) -> None:
    jwks = {"keys": [public_jwk(ticket_signer)]}
    late = create_demo_upstream(issuer=ISSUER, jwks=lambda: jwks, filing_number=FILING, clock=lambda: NOW + 65)
    media = {"audio": AUDIO}
    assert_problem(post(late.test_client(), media, ticket(ticket_signer, "voice_edit", media)), 403, "ticket_expired")


def test_a_replayed_ticket_is_refused(upstream: FlaskClient, ticket_signer: KeySigner) -> None:
    media = {"audio": AUDIO}
    once = ticket(ticket_signer, "voice_edit", media)
    assert post(upstream, media, once).status_code == 200
    assert_problem(post(upstream, media, once), 403, "ticket_replayed")


def test_media_that_do_not_fit_the_operation_are_refused(upstream: FlaskClient, ticket_signer: KeySigner) -> None:
    media = {"audio": AUDIO}
    assert_problem(post(upstream, media, ticket(ticket_signer, "face_swap", media)), 422, "media_roles_mismatch")


def test_media_that_cannot_be_edited_are_refused(upstream: FlaskClient, ticket_signer: KeySigner) -> None:
    media = {"target": b"GIF89a but not really"}
    assert_problem(post(upstream, media, ticket(ticket_signer, "face_attribute_edit", media)), 415, "unsupported_media")


def test_a_request_without_media_is_refused(upstream: FlaskClient, ticket_signer: KeySigner) -> None:
    assert_problem(post(upstream, {}, ticket(ticket_signer, "voice_edit", {"audio": AUDIO})), 400, "bad_media_parts")


def test_a_role_sent_twice_is_refused(upstream: FlaskClient, ticket_signer: KeySigner) -> None:
    response = upstream.post(
        "/edit",
        data={"audio": [(io.BytesIO(AUDIO), "a.wav"), (io.BytesIO(AUDIO), "b.wav")]},
        headers={"Consent-Ticket": ticket(ticket_signer, "voice_edit", {"audio": AUDIO})},
        content_type="multipart/form-data",
    )
    assert_problem(response, 400, "bad_media_parts")


def test_an_oversized_upload_is_refused(ticket_signer: KeySigner) -> None:
    jwks = {"keys": [public_jwk(ticket_signer)]}
    small = create_demo_upstream(
        issuer=ISSUER, jwks=lambda: jwks, filing_number=FILING, clock=lambda: NOW, max_upload_bytes=1024
    )
    media = {"audio": AUDIO}
    assert_problem(
        post(small.test_client(), media, ticket(ticket_signer, "voice_edit", media)), 413, "payload_too_large"
    )


def test_only_post_edit_exists(upstream: FlaskClient) -> None:
    assert_problem(upstream.get("/edit"), 405, "method_not_allowed")
    assert_problem(upstream.post("/"), 404, "not_found")


# --- keys fetched from the gateway ------------------------------------------------------------------


def jwks_server(documents: list[dict[str, Any]], calls: list[str]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, json=documents[min(len(calls), len(documents)) - 1])

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_keys_are_fetched_from_the_jwks_url_and_cached(ticket_signer: KeySigner) -> None:
    calls: list[str] = []
    keys = CachedJwks(JWKS_URL, client=jwks_server([{"keys": [public_jwk(ticket_signer)]}], calls))
    client = create_demo_upstream(issuer=ISSUER, jwks=keys, filing_number=FILING, clock=lambda: NOW).test_client()

    for _ in range(2):
        media = {"audio": AUDIO}
        assert post(client, media, ticket(ticket_signer, "voice_edit", media)).status_code == 200
    assert calls == [JWKS_URL]


def test_a_rotated_key_is_fetched_when_a_ticket_names_it(ticket_signer: KeySigner) -> None:
    rotated = KeySigner(kid="k-gw-2", issuer=ISSUER, private_key=Ed25519PrivateKey.generate())
    calls: list[str] = []
    clock = iter(range(0, 10_000, 60))
    keys = CachedJwks(
        JWKS_URL,
        client=jwks_server(
            [{"keys": [public_jwk(ticket_signer)]}, {"keys": [public_jwk(rotated), public_jwk(ticket_signer)]}],
            calls,
        ),
        clock=lambda: float(next(clock)),
    )
    client = create_demo_upstream(issuer=ISSUER, jwks=keys, filing_number=FILING, clock=lambda: NOW).test_client()
    media = {"audio": AUDIO}

    assert post(client, media, ticket(ticket_signer, "voice_edit", media)).status_code == 200
    assert post(client, media, ticket(rotated, "voice_edit", media)).status_code == 200
    assert len(calls) == 2


def test_an_unknown_key_after_a_fresh_fetch_is_refused(ticket_signer: KeySigner) -> None:
    stranger = KeySigner(kid="k-stranger", issuer=ISSUER, private_key=Ed25519PrivateKey.generate())
    calls: list[str] = []
    keys = CachedJwks(JWKS_URL, client=jwks_server([{"keys": [public_jwk(ticket_signer)]}], calls), clock=lambda: 0.0)
    client = create_demo_upstream(issuer=ISSUER, jwks=keys, filing_number=FILING, clock=lambda: NOW).test_client()
    media = {"audio": AUDIO}

    assert_problem(post(client, media, ticket(stranger, "voice_edit", media)), 403, "ticket_unknown_key")
    assert len(calls) == 1  # just fetched: a stranger's kid does not make it fetch again


def test_unreachable_keys_refuse_with_503(ticket_signer: KeySigner) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    keys = CachedJwks(JWKS_URL, client=httpx.Client(transport=httpx.MockTransport(down)))
    client = create_demo_upstream(issuer=ISSUER, jwks=keys, filing_number=FILING, clock=lambda: NOW).test_client()
    media = {"audio": AUDIO}
    assert_problem(post(client, media, ticket(ticket_signer, "voice_edit", media)), 503, "jwks_unavailable")


# --- the edits themselves ---------------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "width"), [(1, 1), (1, 2), (2, 2), (1, 4)])
def test_shift_pitch_moves_a_tone_up_an_octave_in_every_pcm_layout(channels: int, width: int) -> None:
    original = tone(300, channels=channels, width=width)
    shifted = media_edits.shift_pitch(original, 12)

    with wave.open(io.BytesIO(shifted)) as edited, wave.open(io.BytesIO(original)) as source:
        assert edited.getparams() == source.getparams()
    assert energy_at(shifted, 600) > 10 * energy_at(shifted, 300)
    assert energy_at(original, 300) > 10 * energy_at(original, 600)


@pytest.mark.parametrize("data", [b"", b"RIFF....WAVEfmt ", b"not audio"])
def test_shift_pitch_refuses_what_is_not_pcm_wav(data: bytes) -> None:
    with pytest.raises(media_edits.UnsupportedMedia):
        media_edits.shift_pitch(data, 3)


def test_shift_pitch_refuses_24_bit_samples() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(3)
        writer.setframerate(8000)
        writer.writeframes(b"\x00" * 300)
    with pytest.raises(media_edits.UnsupportedMedia, match="24-bit"):
        media_edits.shift_pitch(buffer.getvalue(), 3)


@pytest.mark.parametrize(
    "image", [b"", b"\x89PNG\r\n\x1a\n broken", portrait((0, 0, 0), (1, 1, 1))[:100]], ids=["empty", "bad", "cut"]
)
def test_image_edits_refuse_what_is_not_an_image(image: bytes) -> None:
    with pytest.raises(media_edits.UnsupportedMedia):
        media_edits.restyle_face(image)


def test_image_edits_refuse_tiny_and_huge_images(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = io.BytesIO()
    Image.new("RGB", (63, 400)).save(tiny, "PNG")
    with pytest.raises(media_edits.UnsupportedMedia, match="at least"):
        media_edits.restyle_face(tiny.getvalue())
    monkeypatch.setattr(media_edits, "MAX_IMAGE_PIXELS", 240 * 320 - 1)
    with pytest.raises(media_edits.UnsupportedMedia, match="at most"):
        media_edits.swap_face(SOURCE, TARGET)


@pytest.mark.parametrize("size", [(64, 400), (400, 64), (64, 64), (1200, 900)])
def test_the_upstream_draws_no_mark_of_its_own(size: tuple[int, int]) -> None:
    # The gateway's mark, and where its box lies for these very sizes, is tested in tests/gateway/labels.
    blank = io.BytesIO()
    Image.new("RGB", size, (255, 255, 255)).save(blank, "PNG")
    edited = Image.open(io.BytesIO(media_edits.restyle_face(blank.getvalue()))).convert("L")

    assert edited.point(lambda v: 255 if v < 40 else 0).getbbox() is None


def test_the_json_request_part_the_gateway_adds_is_not_taken_for_media(ticket_signer: KeySigner) -> None:
    jwks = {"keys": [public_jwk(ticket_signer)]}
    app = create_demo_upstream(issuer=ISSUER, jwks=lambda: jwks, filing_number=FILING, clock=lambda: NOW)
    media = {"audio": AUDIO}
    # The multipart body as gateway/proxy/upstream.py builds it: a filename-less JSON part, then the media.
    files = [
        ("request", (None, b'{"operation": "voice_edit"}', "application/json")),
        ("audio", ("audio.wav", AUDIO, "audio/wav")),
    ]
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://upstream.test") as client:
        response = client.post(
            "/edit", files=files, headers={"Consent-Ticket": ticket(ticket_signer, "voice_edit", media)}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
