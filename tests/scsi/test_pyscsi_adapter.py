"""The pyscsi boundary: its exceptions become mpath errors, its tables are reachable."""

from __future__ import annotations

import pytest
from pyscsi.pyscsi.scsi_cdb_read16 import Read16
from pyscsi.pyscsi.scsi_command import SCSICommand
from pyscsi.pyscsi.scsi_sense import SCSICheckCondition

from mpath.errors import MpathError
from mpath.scsi.errors import PyscsiCheckConditionError, PyscsiError
from mpath.scsi.pyscsi_adapter import (
    asc_description,
    pyscsi_errors,
    reference_decode_inquiry,
    sense_key_description,
)
from mpath.scsi.sense import SenseKey, decode_sense, encode_sense


@pytest.mark.parametrize(
    "nested",
    [
        Read16.OpcodeException,
        Read16.CommandNotImplemented,
        SCSICommand.MissingBlocksizeException,
    ],
    ids=lambda cls: cls.__name__,
)
def test_metaclass_made_exceptions_become_pyscsi_errors(nested: type[Exception]) -> None:
    with pytest.raises(PyscsiError) as caught, pyscsi_errors("Read16"):
        raise nested("boom")
    assert caught.value.kind == nested.__name__
    assert caught.value.operation == "Read16"
    assert isinstance(caught.value, MpathError)
    assert isinstance(caught.value.__cause__, nested)


def test_check_condition_keeps_key_asc_and_ascq() -> None:
    with pytest.raises(PyscsiCheckConditionError) as caught, pyscsi_errors("Inquiry"):
        raise SCSICheckCondition(bytearray(encode_sense(SenseKey.NOT_READY, 0x04, 0x0B)))
    sense = decode_sense(caught.value.sense)
    assert sense is not None
    assert (sense.key, sense.asc, sense.ascq) == (SenseKey.NOT_READY, 0x04, 0x0B)


def test_unrelated_exceptions_pass_through() -> None:
    with pytest.raises(RuntimeError), pyscsi_errors("x"):
        raise RuntimeError("not pyscsi's")


def test_pyscsi_decoder_failures_on_garbage_are_translated() -> None:
    garbage = bytes([0, 0x83, 0, 2, 1, 3])  # a designator header cut after 2 bytes
    with pytest.raises(PyscsiError):
        reference_decode_inquiry(garbage, evpd=True)


def test_asc_descriptions() -> None:
    assert asc_description(0x25, 0x00) == "LOGICAL UNIT NOT SUPPORTED"
    assert asc_description(0x04, 0x0A) is not None
    assert asc_description(0x80, 0x01) == "vendor specific"
    assert asc_description(0x7E, 0x7E) is None
    assert sense_key_description(SenseKey.UNIT_ATTENTION) == "Unit Attention"
    assert sense_key_description(0x0C) is None
