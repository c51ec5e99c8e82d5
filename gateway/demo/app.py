"""A pretend face-swap app, the gateway's OAuth client, for the README's click-through demo.

It does what a real integrating app does, over HTTP only: asks the gateway for a consent request,
sends the person to the consent screen, reads the outcome, sends edits through the proxy and shows
the edited image (with what ``POST /v1/labels/verify`` says about it), or the gateway's refusal.
Nothing here is used by the gateway itself.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
from typing import Any

import httpx
from flask import Flask, redirect, render_template, request, session, url_for
from PIL import Image, ImageDraw
from werkzeug.wrappers import Response

DEMO_OPERATIONS = ("face_swap", "face_attribute_edit", "voice_clone")


def sample_face(colour: tuple[int, int, int], label: str) -> bytes:
    """A drawn 'face' so the demo needs no photos; the upstream's edit is visible on it."""
    image = Image.new("RGB", (320, 320), (235, 235, 240))
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 40, 260, 280), fill=colour, outline=(40, 40, 40), width=4)
    draw.ellipse((110, 120, 140, 150), fill=(255, 255, 255))
    draw.ellipse((180, 120, 210, 150), fill=(255, 255, 255))
    draw.arc((115, 170, 205, 240), 20, 160, fill=(60, 20, 20), width=6)
    draw.text((12, 296), label, fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def create_demo_app(*, gateway: str, client_id: str, client_secret: str, filing_number: str,
                    public_url: str) -> Flask:
    app = Flask(__name__, template_folder="templates")
    app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
    http = httpx.Client(base_url=gateway, timeout=60)

    def token() -> str:
        response = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(client_id, client_secret))
        response.raise_for_status()
        access: str = response.json()["access_token"]
        return access

    def api(method: str, path: str, **kwargs: Any) -> httpx.Response:
        return http.request(method, path, headers={"Authorization": f"Bearer {token()}"}, **kwargs)

    @app.get("/")
    def index() -> str:
        consents = session.get("consents", [])
        return render_template("index.html", operations=DEMO_OPERATIONS, consents=consents, gateway=gateway)

    @app.post("/ask")
    def ask() -> Response:
        operations = [op for op in request.form.getlist("operation") if op in DEMO_OPERATIONS]
        body = {
            "subject": {"reference": request.form.get("reference") or "demo-user"},
            "operations": operations or ["face_swap"],
            "purpose": "Swap your face into a fun picture in the Demo Face App",
            "algorithms": [filing_number],
            "duration_days": 30,
            "max_uses": 20,
            "redirect_uri": f"{public_url}/back",
        }
        response = api("POST", "/v1/consent-requests", json=body)
        if response.status_code >= 400:
            return Response(render_template("problem.html", problem=response.json()), status=response.status_code)
        created = response.json()
        return redirect(created["consent_url"])

    @app.get("/back")
    def back() -> Response:
        request_id = request.args.get("request_id", "")
        found = api("GET", f"/v1/consent-requests/{request_id}")
        if found.status_code == 200 and found.json().get("consent_id"):
            consents = session.get("consents", [])
            consent_id = found.json()["consent_id"]
            if consent_id not in consents:
                session["consents"] = [*consents, consent_id]
        return redirect(url_for("index"))

    @app.post("/edit")
    def edit() -> str:
        consent_id = request.form.get("consent_id", "")
        operation = request.form.get("operation", "face_swap")
        files = {
            "source": ("source.png", sample_face((240, 190, 150), "source: the consenting person"), "image/png"),
            "target": ("target.png", sample_face((150, 200, 240), "target picture"), "image/png"),
        }
        if operation == "face_attribute_edit":
            files = {"target": files["target"]}
        terms = {"operation": operation, "algorithm": filing_number, "consents": [consent_id]}
        response = api("POST", "/v1/edits", files={"request": (None, json.dumps(terms), "application/json"),
                                                   **files})
        if response.status_code != 200:
            return render_template("problem.html", problem=response.json())
        image = base64.b64encode(response.content).decode()
        content_type = response.headers.get("content-type", "image/png")
        # What anyone can learn from the file alone: the gateway's label says where it comes from.
        checked = http.post("/v1/labels/verify", files={"file": ("edited", response.content, content_type)})
        verification = checked.json() if checked.status_code == 200 else {
            "valid": False, "error": {"code": checked.json().get("code"), "detail": checked.json().get("detail")}}
        return render_template("result.html", image=image, content_type=content_type,
                               decision=response.headers.get("Consent-Decision"), verification=verification)

    @app.get("/consents/<consent_id>")
    def consent(consent_id: str) -> str:
        found = api("GET", f"/v1/consents/{consent_id}")
        return render_template("consent.html", consent=found.json())

    return app
