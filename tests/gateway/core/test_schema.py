"""One naming convention and one aware-UTC datetime type across every table (gateway, consent, audit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, MetaData

from audit import models as audit_models
from consent import models as consent_models
from gateway.core import models as gateway_models
from gateway.core.schema import import_models

import_models()
METADATAS: list[MetaData] = [gateway_models.Base.metadata, consent_models.Base.metadata,
                             audit_models.Base.metadata]


def test_every_metadata_names_constraints_alike() -> None:
    assert audit_models.NAMING_CONVENTION == consent_models.NAMING_CONVENTION
    for metadata in METADATAS:
        assert dict(metadata.naming_convention) == {**metadata.naming_convention,
                                                    **consent_models.NAMING_CONVENTION}


def test_every_datetime_column_is_aware_utc() -> None:
    naive = [f"{table.name}.{column.name}" for metadata in METADATAS for table in metadata.tables.values()
             for column in table.columns
             if isinstance(column.type, DateTime) or (
                 getattr(column.type, "impl", None) is not None and isinstance(column.type.impl, DateTime)
                 and type(column.type).__name__ != "UTCDateTime")]
    assert naive == []


@pytest.mark.parametrize("kind", [consent_models.UTCDateTime, audit_models.UTCDateTime])
def test_the_two_aware_types_behave_alike(kind: type) -> None:
    column_type = kind()
    plus_eight = datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    assert column_type.process_bind_param(plus_eight, None) == datetime(2026, 1, 1, tzinfo=UTC)
    assert column_type.process_result_value(datetime(2026, 1, 1), None) == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        column_type.process_bind_param(datetime(2026, 1, 1), None)
