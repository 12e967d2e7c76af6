"""The hand-written cffi declarations against libiscsi 1.19.0's ABI (no rig).

ABI mode trusts the declarations blindly, so every offset the transport reads is pinned
here, computed by hand from the 1.19.0 headers for LP64 (x86_64, aarch64). A change to
the cdefs that moves a field fails these tests; a library whose real layout differs is
caught by the live tests in test_iscsi.py (known INQUIRY data, a known CHECK CONDITION).
"""

from __future__ import annotations

from typing import Any

import pytest

from mpath.transports import libiscsi as li
from mpath.transports.urls import parse_iscsi_url


@pytest.fixture(scope="module")
def lib() -> Any:
    try:
        return li.load()
    except OSError as exc:
        pytest.skip(f"{li.LIBRARY_NAME} not installed: {exc}")


@pytest.mark.parametrize(
    ("field", "offset"),
    [
        ("status", 0),
        ("cdb_size", 4),
        ("xfer_dir", 8),
        ("expxferlen", 12),
        ("cdb", 16),
        ("residual_status", 32),
        ("residual", 40),
        ("sense", 48),
        ("datain", 64),
        ("mem", 80),
        ("ptr", 88),
        ("itt", 96),
        ("cmdsn", 100),
        ("lun", 104),
        ("iovector_in", 112),
        ("iovector_out", 144),
    ],
)
def test_scsi_task_layout(field: str, offset: int) -> None:
    assert li.ffi.offsetof("struct scsi_task", field) == offset
    assert li.ffi.sizeof("struct scsi_task") == 176


def test_sense_data_and_iovec_layouts() -> None:
    ffi = li.ffi
    # error_type, key, ascq, three 1-bit fields sharing byte 12, then bit_pointer in
    # byte 13 and field_pointer at 14, as GCC lays out the 1.19.0 struct.
    assert [ffi.offsetof("struct scsi_sense", f) for f in ("key", "ascq")] == [4, 8]
    assert ffi.offsetof("struct scsi_sense", "bit_pointer") == 13
    assert ffi.offsetof("struct scsi_sense", "field_pointer") == 14
    assert ffi.sizeof("struct scsi_sense") == 16
    assert ffi.offsetof("struct scsi_data", "data") == 8
    assert ffi.sizeof("struct scsi_iovec") == 16
    assert ffi.sizeof("struct scsi_iovector") == 32
    assert ffi.offsetof("struct iscsi_data", "data") == 8


def test_discovery_list_layouts() -> None:
    """SendTargets results (read by mpath.discovery): two singly linked lists."""
    ffi = li.ffi
    assert ffi.offsetof("struct iscsi_target_portal", "portal") == 8
    assert ffi.offsetof("struct iscsi_discovery_address", "target_name") == 8
    assert ffi.offsetof("struct iscsi_discovery_address", "portals") == 16


def test_url_and_private_context_layouts() -> None:
    ffi = li.ffi
    assert ffi.offsetof("struct iscsi_url", "lun") == 6 * 256
    assert ffi.offsetof("struct iscsi_url", "iscsi") == 6 * 256 + 8
    head = "struct mpath_iscsi_context_1_19"
    # drv, opaque, transport (20 bytes), 9 strings of 256, chap_c[2049], 2 more
    # strings: 4885; target_chap_i aligned to 4888.
    assert ffi.offsetof(head, "initiator_name") == 20
    assert ffi.offsetof(head, "target_name") == 276
    assert ffi.offsetof(head, "target_chap_i") == 4888
    assert ffi.offsetof(head, "error_string") == 4908
    assert ffi.offsetof(head, "session_type") == 5164
    assert ffi.offsetof(head, "expcmdsn") == 5188
    assert ffi.offsetof(head, "maxcmdsn") == 5192
    assert ffi.offsetof(head, "fd") == 5208
    assert ffi.offsetof(head, "is_loggedin") == 5260


def test_error_string_is_where_the_private_layout_says(lib: Any) -> None:
    """iscsi_get_error() returns a pointer into the context: it must match our offset."""
    ffi = li.ffi
    ctx = lib.iscsi_create_context(b"iqn.2026-11.org.mpath:layout-test")
    try:
        assert lib.iscsi_parse_full_url(ctx, b"not a url") == ffi.NULL
        error = lib.iscsi_get_error(ctx)
        head = ffi.cast("struct mpath_iscsi_context_1_19 *", ctx)
        assert ffi.cast("uintptr_t", error) == ffi.cast("uintptr_t", head.error_string)
        assert ffi.string(head.initiator_name) == b"iqn.2026-11.org.mpath:layout-test"
        assert "Invalid URL" in li.error_text(lib, ctx)
    finally:
        lib.iscsi_destroy_context(ctx)


def test_cmdsn_window_refuses_a_context_that_is_not_logged_in(lib: Any) -> None:
    ctx = lib.iscsi_create_context(b"iqn.2026-11.org.mpath:layout-test")
    try:
        window = li.cmdsn_window(
            lib, ctx, initiator_name=b"iqn.2026-11.org.mpath:layout-test", target_name=b""
        )
        assert window is None
    finally:
        lib.iscsi_destroy_context(ctx)


@pytest.mark.parametrize(
    "url",
    [
        "iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.t-1a2b3c4d/1",
        "iscsi://198.18.3.2:3261/iqn.2026-11.org.mpath:rig.t-1a2b3c4d/0",
        "iscsi://[fd00::2]:3261/iqn.2001-04.com.example:disk/7",
        "iscsi://10.0.0.1/iqn.2001-04.com.example%3Adisk/3",
    ],
)
def test_mpath_and_libiscsi_parse_urls_alike(lib: Any, url: str) -> None:
    ours = parse_iscsi_url(url)
    theirs = li.libiscsi_parse_url(url)
    assert theirs is not None
    assert (theirs.target, theirs.lun) == (ours.target, ours.lun)
    # libiscsi keeps the portal as written (port optional); both name the same socket.
    assert ours.portal in (theirs.portal, f"{theirs.portal}:3260")
