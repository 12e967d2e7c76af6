"""Persistent-reservation pieces: CDB bytes, key arithmetic and validation, PR IN data."""

from __future__ import annotations

import struct

import pytest

from mpath.errors import UsageError
from mpath.scsi import cdb
from mpath.scsi.errors import ScsiDataError
from mpath.scsi.reservations import (
    FENCING_TYPE,
    PrIn,
    PrOut,
    PrType,
    Reservation,
    foreign_holder,
    is_ours,
    parse_read_keys,
    parse_read_reservation,
    parse_reservation_key,
    path_key,
)

BASE = 0x6D70617468000000


def test_pr_cdbs_follow_spc4() -> None:
    # PERSISTENT RESERVE OUT, PREEMPT AND ABORT, LU scope, type 5, 24-byte list.
    assert cdb.persistent_reserve_out(PrOut.PREEMPT_AND_ABORT, FENCING_TYPE).hex() == (
        "5f050500000000001800"
    )
    assert cdb.persistent_reserve_out(PrOut.REGISTER_AND_IGNORE_EXISTING_KEY).hex() == (
        "5f060000000000001800"
    )
    assert cdb.persistent_reserve_in(PrIn.READ_KEYS, 8192).hex() == "5e00" + "00" * 5 + "200000"
    params = cdb.pr_out_parameters(BASE | 0x0102, BASE | 0x0303)
    assert len(params) == cdb.PR_OUT_PARAMETERS_LEN == 24
    assert struct.unpack(">QQ", params[:16]) == (BASE | 0x0102, BASE | 0x0303)
    assert params[16:] == bytes(8)  # no SPEC_I_PT, ALL_TG_PT, APTPL


def test_pr_cdb_fields_out_of_range_are_refused() -> None:
    with pytest.raises(UsageError):
        cdb.persistent_reserve_out(0x20)
    with pytest.raises(UsageError):
        cdb.persistent_reserve_in(PrIn.READ_KEYS, 1 << 16)
    with pytest.raises(UsageError):
        cdb.pr_out_parameters(1 << 64)


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("0x6d70617468000000", BASE),
        ("0X6D70617468000000", BASE),
        (BASE, BASE),
        ("0x10000", 0x10000),
    ],
)
def test_reservation_keys_are_read_strictly(value: object, key: int) -> None:
    assert parse_reservation_key(value) == key


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0x6d70617468000100", "low two bytes must be 0000"),
        ("0x6d70617468000001", "try 0x6d70617468000000"),
        ("6d70617468000000", "expected 0x"),
        ("0x", "expected 0x"),
        ("0xzz0000", "not a hex number"),
        ("0x0", "above 0"),
        ("0x10000000000000000", "fit in 64 bits"),
        (True, "hex string or an integer"),
        (1.5, "hex string or an integer"),
    ],
)
def test_bad_reservation_keys_get_one_clear_error(value: object, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse_reservation_key(value)


def test_each_registration_gets_its_own_key_under_the_host_prefix() -> None:
    keys = {path_key(BASE, index, generation) for index in (1, 2) for generation in (7, 8)}
    assert len(keys) == 4
    assert all(is_ours(BASE, k) for k in keys)
    assert path_key(BASE, 2, 0x1FF) == BASE | 0xFF02  # the counter wraps in its byte
    assert not is_ours(BASE, BASE)  # no path number: not a path key
    assert not is_ours(BASE, 0x0BAD000000000001)
    with pytest.raises(UsageError, match="at most 255 paths"):
        path_key(BASE, 256, 1)


def _keys_data(generation: int, keys: list[int]) -> bytes:
    return struct.pack(">II", generation, 8 * len(keys)) + b"".join(
        struct.pack(">Q", k) for k in keys
    )


def test_read_keys_and_read_reservation_data_are_parsed() -> None:
    assert parse_read_keys(_keys_data(5, [BASE | 0x101, BASE | 0x202])) == (
        5,
        [BASE | 0x101, BASE | 0x202],
    )
    assert parse_read_keys(_keys_data(1, [])) == (1, [])
    assert parse_read_reservation(struct.pack(">II", 3, 0)) is None
    data = struct.pack(">IIQ4xxB2x", 3, 16, 0, FENCING_TYPE)
    assert parse_read_reservation(data) == Reservation(3, 0, FENCING_TYPE)
    with pytest.raises(ScsiDataError):
        parse_read_keys(b"\0\0\0")
    with pytest.raises(ScsiDataError):
        parse_read_reservation(struct.pack(">II", 3, 16))


def test_only_our_own_reservation_is_taken_over() -> None:
    ours = Reservation(1, BASE | 0x101, FENCING_TYPE)
    assert foreign_holder(BASE, None, []) is None
    assert foreign_holder(BASE, ours, [BASE | 0x101, BASE | 0x9902]) is None  # left by us
    stranger = 0x0BAD000000000000
    why = foreign_holder(BASE, ours, [BASE | 0x101, stranger])
    assert why is not None and "other initiators" in why and f"{stranger:#018x}" in why
    held = Reservation(1, stranger, PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY)
    why = foreign_holder(BASE, held, [stranger])
    assert why is not None and "reserved by another initiator" in why
    exclusive = Reservation(1, BASE | 0x101, PrType.EXCLUSIVE_ACCESS)
    why = foreign_holder(BASE, exclusive, [BASE | 0x101])
    assert why is not None and "did not make" in why
