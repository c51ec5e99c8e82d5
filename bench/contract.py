"""The long contract run: schemathesis over /openapi.json with many more examples than the suite's.

    python bench/contract.py [--backend sqlite|postgresql] [--examples 200] [--stateful 100]
                             [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

The same world and checks as tests/security/test_schemathesis.py (a registered algorithm, a granted
consent, an allowed decision and a pending request whose ids fill positive cases' path parameters;
positive and negative phases per operation; a stateful phase along the document's links), in process
on a fresh database. Prints the operations, the requests sent and every failure (first line), and exits
non-zero when there was one. In-process only: no network, every loop bounded by --examples.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import schemathesis  # noqa: E402
from _harness import database, gateway_app  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from tests.factories import bearer, make_app_client, make_consent, register_algorithm, token_for  # noqa: E402
from tests.security.test_schemathesis import DOCUMENTED, FILING, _with_real_ids  # noqa: E402

CHECKS = {GenerationMode.POSITIVE: DOCUMENTED, GenerationMode.NEGATIVE: [*DOCUMENTED]}


def _first_line(exc: BaseException) -> str:
    """The failure's own words: schemathesis puts the check that failed on its first lines."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:6] if line.strip())
    return text[:300]


def _fuzz(operation: Any, mode: GenerationMode, examples: int, *, ids: dict[str, str], headers: dict[str, str],
          count: Any) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            _with_real_ids(case, ids)
        count()
        case.call_and_validate(headers=headers, checks=CHECKS[mode])

    fuzz()


def run(backend: str, pg_url: str, examples: int, stateful: int) -> dict[str, Any]:
    from schemathesis.specs.openapi.checks import negative_data_rejection

    CHECKS[GenerationMode.NEGATIVE] = [*DOCUMENTED, negative_data_rejection]
    sent: Counter[str] = Counter()
    failures: list[str] = []
    with database(backend, pg_url) as url:
        app = gateway_app(url, "http://gateway.test")
        app.config.update(OTP_SEND_PER_IP=10**9, OTP_VERIFY_PER_IP=10**9, TOKEN_RATE_LIMIT_PER_MINUTE=10**9)
        register_algorithm(app, FILING, upstream_url="http://127.0.0.1:9/edit")
        fuzzer = make_app_client(app, name="Fuzzer")
        client = app.test_client()
        headers = bearer(token_for(client, fuzzer))
        consent_id = make_consent(app, fuzzer.client_id)
        decided = client.post("/v1/decisions", headers=headers, json={
            "operation": "face_swap", "algorithm": FILING, "consents": [consent_id],
            "media": [{"role": "source", "sha256": hashlib.sha256(b"fuzz").hexdigest()}]}).get_json()
        requested = client.post("/v1/consent-requests", headers=headers,
                                json={"operations": ["face_swap"], "purpose": "fuzzing"}).get_json()
        ids = {"consent_id": consent_id, "decision_id": decided["decision_id"], "request_id": requested["id"],
               "filing_number": FILING}
        schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
        operations = [(method, path) for path, item in schema.raw_schema["paths"].items() for method in item]
        started = time.monotonic()
        for method, path in operations:
            operation = schema[path][method.upper()]
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                label = f"{method.upper()} {path} [{mode.value}]"
                try:
                    _fuzz(operation, mode, examples, ids=ids, headers=headers,
                          count=lambda label=label: sent.update([label]))
                except Unsatisfiable:
                    pass
                except (Exception, BaseExceptionGroup) as exc:  # collected and reported: the run goes on
                    failures.append(f"{label}: {_first_line(exc)}")
        machine = schema.as_state_machine()

        class Contract(machine):  # type: ignore[misc, valid-type]
            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                sent["stateful"] += 1
                return {"headers": headers}

            def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                                  **kwargs: Any) -> None:
                case.validate_response(response, checks=DOCUMENTED)

        try:
            run_state_machine_as_test(Contract, settings=settings(
                max_examples=stateful, stateful_step_count=10, deadline=None, database=None,
                suppress_health_check=list(HealthCheck)))
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"stateful: {_first_line(exc)}")
        seconds = time.monotonic() - started
    return {"backend": backend, "operations": len(operations), "requests": sum(sent.values()),
            "stateful_requests": sent["stateful"], "seconds": round(seconds, 1), "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--examples", type=int, default=200, help="generated requests per operation and phase")
    parser.add_argument("--stateful", type=int, default=100, help="stateful scenarios")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    result = run(args.backend, args.pg_url, args.examples, args.stateful)
    print(json.dumps(result, indent=2))
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
