from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.errors import InvalidTerms, UnknownOperation
from consent.operations import OPERATIONS
from consent.policy import (
    ALLOW,
    AlgorithmView,
    BindingCheck,
    ConsentView,
    Decision,
    DecisionRequest,
    DenyReason,
    decide,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ALGO = "GD-2025-001"

ALGORITHM = AlgorithmView(filing_number=ALGO, status="active", operations=frozenset({"face_swap", "voice_clone"}))


def consent(consent_id: str = "cns_a", **changes: Any) -> ConsentView:
    base = ConsentView(
        id=consent_id,
        client_id="faceapp",
        subject_id="sub_" + consent_id,
        status="active",
        operations=frozenset({"face_swap"}),
        algorithms=None,
        not_before=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=1),
        max_uses=None,
        uses=0,
    )
    return dataclasses.replace(base, **changes)


def request(*consent_ids: str, **changes: Any) -> DecisionRequest:
    base = DecisionRequest(
        client_id="faceapp",
        operation="face_swap",
        algorithm=ALGO,
        consent_ids=consent_ids or ("cns_a",),
        media={"source": "ab" * 32},
    )
    return dataclasses.replace(base, **changes)


def denial(decision: Decision) -> tuple[DenyReason | None, str | None]:
    assert not decision.allowed
    return decision.reason, decision.consent_id


# --- allow ------------------------------------------------------------------------------------------


def test_an_active_consent_for_this_client_operation_and_algorithm_allows() -> None:
    assert decide([consent()], request(), ALGORITHM, NOW) == ALLOW


def test_every_named_consent_usable_allows() -> None:
    views = [consent("cns_a"), consent("cns_b", algorithms=frozenset({ALGO}), max_uses=3, uses=2)]
    assert decide(views, request("cns_a", "cns_b"), ALGORITHM, NOW).allowed


def test_consents_not_named_by_the_request_are_ignored() -> None:
    views = [consent("cns_a"), consent("cns_other", status="revoked", client_id="evil")]
    assert decide(views, request("cns_a"), ALGORITHM, NOW).allowed


def test_the_validity_period_includes_not_before_and_excludes_expires_at() -> None:
    view = consent(not_before=NOW, expires_at=NOW + timedelta(microseconds=1))
    assert decide([view], request(), ALGORITHM, NOW).allowed
    assert denial(decide([view], request(), ALGORITHM, NOW + timedelta(microseconds=1))) == (
        DenyReason.CONSENT_EXPIRED,
        "cns_a",
    )


# --- each deny reason -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("views", "req", "algorithm", "expected"),
    [
        ([consent()], request(consent_ids=()), ALGORITHM, (DenyReason.MISSING_CONSENT, None)),
        ([consent()], request(), None, (DenyReason.ALGORITHM_NOT_REGISTERED, None)),
        (
            [consent()],
            request(),
            dataclasses.replace(ALGORITHM, filing_number="GD-OTHER"),
            (DenyReason.ALGORITHM_NOT_REGISTERED, None),
        ),
        (
            [consent()],
            request(),
            dataclasses.replace(ALGORITHM, operations=frozenset({"voice_clone"})),
            (DenyReason.ALGORITHM_NOT_REGISTERED, None),
        ),
        (
            [consent()],
            request(),
            dataclasses.replace(ALGORITHM, status="suspended"),
            (DenyReason.ALGORITHM_SUSPENDED, None),
        ),
        (
            [consent()],
            request(),
            dataclasses.replace(ALGORITHM, status="ACTIVE"),
            (DenyReason.ALGORITHM_SUSPENDED, None),
        ),
        ([], request(), ALGORITHM, (DenyReason.CONSENT_NOT_FOUND, "cns_a")),
        ([consent(), consent()], request(), ALGORITHM, (DenyReason.CONSENT_NOT_FOUND, "cns_a")),
        ([consent(client_id="otherapp")], request(), ALGORITHM, (DenyReason.CONSENT_NOT_FOR_CLIENT, "cns_a")),
        ([consent(status="withdrawn")], request(), ALGORITHM, (DenyReason.CONSENT_WITHDRAWN, "cns_a")),
        ([consent(status="revoked")], request(), ALGORITHM, (DenyReason.CONSENT_REVOKED, "cns_a")),
        ([consent(status="expired")], request(), ALGORITHM, (DenyReason.CONSENT_EXPIRED, "cns_a")),
        ([consent(status="exhausted")], request(), ALGORITHM, (DenyReason.CONSENT_EXHAUSTED, "cns_a")),
        ([consent(expires_at=NOW)], request(), ALGORITHM, (DenyReason.CONSENT_EXPIRED, "cns_a")),
        (
            [consent(not_before=NOW + timedelta(seconds=1))],
            request(),
            ALGORITHM,
            (DenyReason.CONSENT_EXPIRED, "cns_a"),
        ),
        ([consent(max_uses=3, uses=3)], request(), ALGORITHM, (DenyReason.CONSENT_EXHAUSTED, "cns_a")),
        ([consent(max_uses=3, uses=4)], request(), ALGORITHM, (DenyReason.CONSENT_EXHAUSTED, "cns_a")),
        ([consent(uses=-1)], request(), ALGORITHM, (DenyReason.CONSENT_EXHAUSTED, "cns_a")),
        ([consent(max_uses=0, uses=0)], request(), ALGORITHM, (DenyReason.CONSENT_EXHAUSTED, "cns_a")),
        (
            [consent(operations=frozenset({"face_reenactment"}))],
            request(),
            ALGORITHM,
            (DenyReason.OPERATION_NOT_CONSENTED, "cns_a"),
        ),
        (
            [consent(algorithms=frozenset({"GD-2025-999"}))],
            request(),
            ALGORITHM,
            (DenyReason.ALGORITHM_NOT_CONSENTED, "cns_a"),
        ),
        (
            [consent(algorithms=frozenset())],
            request(),
            ALGORITHM,
            (DenyReason.ALGORITHM_NOT_CONSENTED, "cns_a"),
        ),
    ],
    ids=lambda value: value.value if isinstance(value, DenyReason) else None,
)
def test_each_deny_reason(
    views: list[ConsentView],
    req: DecisionRequest,
    algorithm: AlgorithmView | None,
    expected: tuple[DenyReason, str | None],
) -> None:
    assert denial(decide(views, req, algorithm, NOW)) == expected


def test_every_deny_reason_of_the_design_is_reachable_and_stable() -> None:
    assert {reason.value for reason in DenyReason} == {
        "consent_not_found",
        "consent_not_for_client",
        "consent_withdrawn",
        "consent_revoked",
        "consent_expired",
        "consent_exhausted",
        "operation_not_consented",
        "algorithm_not_registered",
        "algorithm_suspended",
        "algorithm_not_consented",
        "missing_consent",
        "binding_requires_media",
        "biometric_mismatch",
        "no_face_found",
        "biometric_not_enrolled",
        "media_not_covered",
        "unreadable_media",
    }


FACE_BOUND = frozenset({"face"})


def test_a_face_bound_consent_in_decision_mode_needs_the_media() -> None:
    decision = decide([consent(bindings=FACE_BOUND)], request(), ALGORITHM, NOW)
    assert denial(decision) == (DenyReason.BINDING_REQUIRES_MEDIA, "cns_a")


def test_a_face_bound_consent_allows_once_the_media_matched() -> None:
    assert decide([consent(bindings=FACE_BOUND)], request(binding=BindingCheck("face")), ALGORITHM, NOW).allowed


@pytest.mark.parametrize("reason", [DenyReason.BIOMETRIC_MISMATCH, DenyReason.NO_FACE_FOUND,
                                    DenyReason.BIOMETRIC_NOT_ENROLLED, DenyReason.MEDIA_NOT_COVERED,
                                    DenyReason.UNREADABLE_MEDIA])
def test_a_failed_binding_check_denies_with_its_own_reason(reason: DenyReason) -> None:
    check = BindingCheck("face", reason, None, "part 'target': nearest distance 0.71, threshold 0.50")
    decision = decide([consent(bindings=FACE_BOUND)], request(binding=check), ALGORITHM, NOW)
    assert denial(decision) == (reason, "cns_a")
    assert "0.71" in decision.detail


def test_a_failed_binding_check_denies_even_where_no_consent_requires_binding() -> None:
    check = BindingCheck("face", DenyReason.BIOMETRIC_MISMATCH, None, "a stranger's face")
    assert denial(decide([consent()], request(binding=check), ALGORITHM, NOW)) == (DenyReason.BIOMETRIC_MISMATCH, None)


def test_an_unusable_consent_is_reported_before_the_binding() -> None:
    decision = decide([consent(bindings=FACE_BOUND, status="withdrawn")], request(), ALGORITHM, NOW)
    assert denial(decision) == (DenyReason.CONSENT_WITHDRAWN, "cns_a")


def test_a_face_binding_does_not_bind_voice_operations() -> None:
    voice = consent(bindings=FACE_BOUND, operations=frozenset({"voice_clone"}))
    voice_algorithm = dataclasses.replace(ALGORITHM, operations=frozenset({"voice_clone"}))
    assert decide([voice], request(operation="voice_clone"), voice_algorithm, NOW).allowed


@pytest.mark.parametrize("status", ["paused", "", "Active", "ACTIVE", "active ", "granted", "pending"])
def test_a_consent_status_the_policy_does_not_know_denies(status: str) -> None:
    decision = decide([consent(status=status)], request(), ALGORITHM, NOW)
    assert denial(decision) == (DenyReason.CONSENT_REVOKED, "cns_a")
    assert repr(status) in decision.detail


def test_a_withdrawn_consent_denies_even_if_every_other_fact_would_allow() -> None:
    view = consent(status="withdrawn", algorithms=frozenset({ALGO}), max_uses=100, uses=0)
    assert denial(decide([view], request(), ALGORITHM, NOW))[0] is DenyReason.CONSENT_WITHDRAWN


# --- precedence -------------------------------------------------------------------------------------


def test_missing_consent_comes_before_the_algorithm() -> None:
    assert denial(decide([], request(consent_ids=()), None, NOW))[0] is DenyReason.MISSING_CONSENT


def test_the_algorithm_comes_before_the_consents() -> None:
    suspended = dataclasses.replace(ALGORITHM, status="suspended")
    assert denial(decide([], request(), None, NOW))[0] is DenyReason.ALGORITHM_NOT_REGISTERED
    assert denial(decide([], request(), suspended, NOW))[0] is DenyReason.ALGORITHM_SUSPENDED


def test_not_registered_comes_before_suspended() -> None:
    other = AlgorithmView(filing_number="GD-OTHER", status="suspended", operations=frozenset({"face_swap"}))
    assert denial(decide([consent()], request(), other, NOW))[0] is DenyReason.ALGORITHM_NOT_REGISTERED


def test_another_clients_consent_never_reveals_its_state() -> None:
    view = consent(client_id="otherapp", status="withdrawn", expires_at=NOW - timedelta(days=1))
    assert denial(decide([view], request(), ALGORITHM, NOW))[0] is DenyReason.CONSENT_NOT_FOR_CLIENT


def test_status_comes_before_the_validity_period_and_the_use_count() -> None:
    view = consent(status="revoked", expires_at=NOW - timedelta(days=1), max_uses=1, uses=1)
    assert denial(decide([view], request(), ALGORITHM, NOW))[0] is DenyReason.CONSENT_REVOKED


def test_validity_period_comes_before_the_use_count() -> None:
    view = consent(expires_at=NOW, max_uses=1, uses=1)
    assert denial(decide([view], request(), ALGORITHM, NOW))[0] is DenyReason.CONSENT_EXPIRED


def test_usability_comes_before_what_was_consented() -> None:
    view = consent(max_uses=1, uses=1, operations=frozenset({"voice_clone"}), algorithms=frozenset({"X"}))
    assert denial(decide([view], request(), ALGORITHM, NOW))[0] is DenyReason.CONSENT_EXHAUSTED


def test_operation_comes_before_algorithm_consent() -> None:
    view = consent(operations=frozenset({"voice_clone"}), algorithms=frozenset({"X"}))
    assert denial(decide([view], request(), ALGORITHM, NOW))[0] is DenyReason.OPERATION_NOT_CONSENTED


def test_an_earlier_check_wins_across_consents_whatever_their_order() -> None:
    views = [consent("cns_a", status="withdrawn"), consent("cns_b", client_id="otherapp")]
    for order in (("cns_a", "cns_b"), ("cns_b", "cns_a")):
        assert denial(decide(views, request(*order), ALGORITHM, NOW)) == (
            DenyReason.CONSENT_NOT_FOR_CLIENT,
            "cns_b",
        )


def test_a_missing_consent_wins_over_any_state_of_the_others() -> None:
    views = [consent("cns_a", client_id="otherapp")]
    assert denial(decide(views, request("cns_a", "cns_gone"), ALGORITHM, NOW)) == (
        DenyReason.CONSENT_NOT_FOUND,
        "cns_gone",
    )


def test_within_one_check_the_first_named_consent_is_reported() -> None:
    views = [consent("cns_a", status="revoked"), consent("cns_b", status="withdrawn")]
    assert denial(decide(views, request("cns_b", "cns_a"), ALGORITHM, NOW)) == (
        DenyReason.CONSENT_WITHDRAWN,
        "cns_b",
    )


# --- malformed input is refused, not decided --------------------------------------------------------


def test_a_request_naming_a_consent_twice_is_refused() -> None:
    with pytest.raises(InvalidTerms):
        request("cns_a", "cns_a")


def test_a_request_for_an_unknown_operation_is_refused() -> None:
    with pytest.raises(UnknownOperation):
        request(operation="lip_sync")


def test_naive_times_are_refused() -> None:
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone"):
        decide([consent()], request(), ALGORITHM, naive)
    with pytest.raises(ValueError, match="timezone"):
        consent(expires_at=naive)


def test_a_decision_allows_without_a_reason_or_denies_with_one() -> None:
    with pytest.raises(ValueError, match="reason"):
        Decision(allowed=True, reason=DenyReason.CONSENT_REVOKED)
    with pytest.raises(ValueError, match="reason"):
        Decision(allowed=False)


# --- properties -------------------------------------------------------------------------------------

_STATUSES = st.sampled_from(["active", "withdrawn", "revoked", "expired", "exhausted"]) | st.text(max_size=8)
_OPS = st.frozensets(st.sampled_from(list(OPERATIONS)), max_size=3)
_ALGOS = st.sampled_from(["GD-1", "GD-2", "GD-3"])
_IDS = st.sampled_from(["cns_a", "cns_b", "cns_c", "cns_d"])
_CLIENTS = st.sampled_from(["faceapp", "voiceapp"])
_OFFSETS = st.integers(min_value=-3, max_value=3).map(lambda days: NOW + timedelta(days=days))


@st.composite
def consent_views(draw: st.DrawFn) -> ConsentView:
    max_uses = draw(st.none() | st.integers(min_value=-1, max_value=3))
    return ConsentView(
        id=draw(_IDS),
        client_id=draw(_CLIENTS),
        subject_id="sub_x",
        status=draw(_STATUSES),
        operations=draw(_OPS),
        algorithms=draw(st.none() | st.frozensets(_ALGOS, max_size=2)),
        not_before=draw(_OFFSETS),
        expires_at=draw(_OFFSETS),
        max_uses=max_uses,
        uses=draw(st.integers(min_value=-1, max_value=4)),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[ConsentView], DecisionRequest, AlgorithmView | None]:
    views = draw(st.lists(consent_views(), max_size=5))
    req = DecisionRequest(
        client_id=draw(_CLIENTS),
        operation=draw(st.sampled_from(list(OPERATIONS))),
        algorithm=draw(_ALGOS),
        consent_ids=tuple(draw(st.lists(_IDS, unique=True, max_size=3))),
        media={},
    )
    algorithm = draw(
        st.none()
        | st.builds(
            AlgorithmView,
            filing_number=_ALGOS,
            status=st.sampled_from(["active", "suspended"]) | st.text(max_size=8),
            operations=_OPS,
        )
    )
    return views, req, algorithm


def _usable(views: list[ConsentView], req: DecisionRequest, algorithm: AlgorithmView | None) -> bool:
    """The allow rule written out plainly, independently of the policy's check order."""
    if not req.consent_ids or algorithm is None:
        return False
    if algorithm.filing_number != req.algorithm or algorithm.status != "active":
        return False
    if req.operation not in algorithm.operations:
        return False
    for consent_id in req.consent_ids:
        matching = [v for v in views if v.id == consent_id]
        if len(matching) != 1:
            return False
        v = matching[0]
        if not (
            v.client_id == req.client_id
            and v.status == "active"
            and v.not_before <= NOW < v.expires_at
            and v.uses >= 0
            and (v.max_uses is None or 0 <= v.uses < v.max_uses)
            and req.operation in v.operations
            and (v.algorithms is None or req.algorithm in v.algorithms)
        ):
            return False
    return True


@settings(max_examples=500)
@given(scenarios())
def test_no_input_with_a_named_non_active_consent_ever_allows(
    scenario: tuple[list[ConsentView], DecisionRequest, AlgorithmView | None],
) -> None:
    views, req, algorithm = scenario
    named = [v for v in views if v.id in req.consent_ids]
    decision = decide(views, req, algorithm, NOW)
    if any(v.status != "active" for v in named):
        assert not decision.allowed


@settings(max_examples=1000)
@given(scenarios())
def test_decide_allows_exactly_when_every_rule_holds(
    scenario: tuple[list[ConsentView], DecisionRequest, AlgorithmView | None],
) -> None:
    views, req, algorithm = scenario
    assert decide(views, req, algorithm, NOW).allowed == _usable(views, req, algorithm)


@settings(max_examples=500)
@given(scenarios())
def test_a_denial_names_a_stable_reason_and_only_a_named_consent(
    scenario: tuple[list[ConsentView], DecisionRequest, AlgorithmView | None],
) -> None:
    views, req, algorithm = scenario
    decision = decide(views, req, algorithm, NOW)
    if not decision.allowed:
        assert isinstance(decision.reason, DenyReason)
        assert decision.consent_id is None or decision.consent_id in req.consent_ids
        assert decision.detail


@settings(max_examples=300)
@given(scenarios(), st.randoms(use_true_random=False))
def test_the_order_of_the_named_consents_never_changes_allow_or_deny(
    scenario: tuple[list[ConsentView], DecisionRequest, AlgorithmView | None], rnd: Any
) -> None:
    views, req, algorithm = scenario
    shuffled_ids = list(req.consent_ids)
    rnd.shuffle(shuffled_ids)
    shuffled = dataclasses.replace(req, consent_ids=tuple(shuffled_ids))
    assert decide(views, req, algorithm, NOW).allowed == decide(views, shuffled, algorithm, NOW).allowed
