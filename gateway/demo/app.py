"""A pretend face-swap app, the gateway's OAuth client, for the README's click-through demo.

It does what a real integrating app does, over HTTP only: asks the gateway for a consent request,
sends the person to the consent screen, reads the outcome, sends edits through the proxy and shows
the edited image (with what ``POST /v1/labels/verify`` says about it), or the gateway's refusal.
It edits real photos (``gateway/demo/faces``) or one the person uploads: with face binding on, the
gateway lets an edit through only if every face in it is the face enrolled with the consent.
Nothing here is used by the gateway itself.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
from flask import Flask, abort, redirect, render_template, request, send_file, session, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from gateway.demo import PERSON_A_ANOTHER_PHOTO, PERSON_A_SELFIE, PERSON_B

DEMO_OPERATIONS = ("face_swap", "face_attribute_edit", "voice_clone")
FACE_EDITS = ("face_swap", "face_attribute_edit")


@dataclass(frozen=True)
class Photo:
    """A photo the app sends, and how the pages name it."""

    name: str
    data: bytes
    content_type: str

    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"


@dataclass(frozen=True)
class BuiltIn:
    """A built-in edit: the face swap's source and target (an attribute edit sends the target alone)."""

    source: Path
    target: Path
    sent: str


# Both swaps take person A's face (the selfie's person) as the source: what decides is whose face the
# target shows, so the second edit is the one a real app must not do without person B's consent.
BUILT_IN_EDITS: Mapping[str, BuiltIn] = MappingProxyType({
    "same": BuiltIn(PERSON_A_SELFIE, PERSON_A_ANOTHER_PHOTO, "another photo of person A, the person in the selfie"),
    "other": BuiltIn(PERSON_A_SELFIE, PERSON_B, "a photo of person B, someone else"),
})
_DOWNLOADS = MappingProxyType({path.name: path for path in (PERSON_A_SELFIE, PERSON_A_ANOTHER_PHOTO, PERSON_B)})


def _built_in(path: Path) -> Photo:
    return Photo(path.name, path.read_bytes(), "image/jpeg")


def _chosen(which: str, upload: FileStorage | None) -> tuple[Photo, Photo, str] | None:
    """The edit's source and target photos and how to name them; None when an upload was asked for but none came."""
    if which == "upload":
        if upload is None or not upload.filename:
            return None
        # Your own photo is both the swap's source and its target: it shows only you.
        mine = Photo(upload.filename, upload.read(), upload.mimetype or "application/octet-stream")
        return mine, mine, "your own photo"
    if which not in BUILT_IN_EDITS:
        abort(400)
    built_in = BUILT_IN_EDITS[which]
    return _built_in(built_in.source), _built_in(built_in.target), built_in.sent


def create_demo_app(*, gateway: str, client_id: str, client_secret: str, filing_number: str,
                    public_url: str) -> Flask:
    app = Flask(__name__, template_folder="templates")
    app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
    # A phone photo is a few MB; the gateway has its own limit, this one only spares the demo's memory.
    app.config["MAX_CONTENT_LENGTH"] = 32 * 1024 * 1024
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
        return render_template("index.html", operations=DEMO_OPERATIONS, face_edits=FACE_EDITS, consents=consents,
                               gateway=gateway, selfie=PERSON_A_SELFIE, built_in=BUILT_IN_EDITS)

    @app.get("/photos/<name>")
    def built_in_photo(name: str) -> Response:
        # So that a newcomer in a browser can save person A's selfie for the consent screen.
        if name not in _DOWNLOADS:
            abort(404)
        return send_file(_DOWNLOADS[name], mimetype="image/jpeg")

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
            return Response(render_template("problem.html", problem=response.json()), status=response.status_code,
                            mimetype="text/html")
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
    def edit() -> Response | str:
        consent_id = request.form.get("consent_id", "")
        operation = request.form.get("operation", "face_swap")
        chosen = _chosen(request.form.get("which", "same"), request.files.get("photo"))
        if chosen is None:
            return Response(render_template("problem.html", heading="Choose a photo first", problem={
                "detail": "Pick a photo of your own face, then send the edit again."}),
                status=400, mimetype="text/html")
        source, target, sent = chosen
        # One file part per media role: a face swap sends source and target, an attribute edit the target.
        shown = {"target": target} if operation == "face_attribute_edit" else {"source": source, "target": target}
        files = {role: (role + Path(part.name).suffix, part.data, part.content_type) for role, part in shown.items()}
        terms = {"operation": operation, "algorithm": filing_number, "consents": [consent_id]}
        response = api("POST", "/v1/edits", files={"request": (None, json.dumps(terms), "application/json"),
                                                   **files})
        if response.status_code != 200:
            # A page, not werkzeug's default text/plain: the browser shows it rendered, not as source.
            return Response(render_template("problem.html", problem=response.json(), sent=sent, shown=shown),
                            status=response.status_code, mimetype="text/html")
        image = base64.b64encode(response.content).decode()
        content_type = response.headers.get("content-type", "image/png")
        # What anyone can learn from the file alone: the gateway's label says where it comes from.
        checked = http.post("/v1/labels/verify", files={"file": ("edited", response.content, content_type)})
        verification = checked.json() if checked.status_code == 200 else {
            "valid": False, "error": {"code": checked.json().get("code"), "detail": checked.json().get("detail")}}
        return render_template("result.html", image=image, content_type=content_type, sent=sent, shown=shown,
                               decision=response.headers.get("Consent-Decision"), verification=verification)

    @app.get("/consents/<consent_id>")
    def consent(consent_id: str) -> str:
        found = api("GET", f"/v1/consents/{consent_id}")
        return render_template("consent.html", consent=found.json())

    return app
