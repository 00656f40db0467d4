"""The run folder's record: written down once as a JSON Schema (docs/record.schema.json), which the records of real
runs match and which refuses records that lost what a finished run must hold."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from repro.config import resolve
from repro.engine import train
from repro.rundir import new_record, state_of

from conftest import RECORD_SCHEMA, produced_records


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(RECORD_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def finished(tiny_cmnist, tmp_path_factory):
    cfg = resolve("cmnist", algorithm="guided", data=str(tiny_cmnist), max_epochs=2, batch_size=64, progress=False)
    out = tmp_path_factory.mktemp("run")
    train(cfg, out)
    return out


def test_a_finished_run_matches_the_schema_and_a_damaged_one_does_not(validator, finished):
    record = json.loads((finished / "record.json").read_text())
    assert list(validator.iter_errors(record)) == []
    assert produced_records(finished) == [finished / "record.json"]  # the session-wide check sees it
    for damage in ("test", "epochs"):
        broken = copy.deepcopy(record)
        if damage == "test":
            broken["test"] = None  # a done record without its test evaluation
        else:
            broken["epochs"][0]["val_acc"] = 120.0  # not a percentage
        assert not validator.is_valid(broken), damage
    extra = {**record, "unknown_key": 1}
    assert not validator.is_valid(extra), "a key the schema does not name is refused: the schema is the whole shape"


def test_a_record_made_before_training_matches_the_schema(validator):
    record = new_record(resolve("cmnist", algorithm="vanilla"))
    assert state_of(record) == "partial" and state_of(None) == "pending"
    record.update(status="failed", error="FileNotFoundError: data/cmnist.h5")  # as the sweep runner writes it
    assert list(validator.iter_errors(record)) == []
    assert state_of(record) == "failed"
