"""A small cffi binding (ABI mode) to libiscsi's asynchronous C API, version 1.19.0.

Why ABI mode: the library is opened at run time with ``ffi.dlopen("libiscsi.so.7")``,
so installing mpath needs no compiler and no ``libiscsi-dev``; Debian bookworm ships
``libiscsi7`` 1.19.0. The price of ABI mode is that cffi cannot check anything against
the real headers: every prototype and every struct layout below is written by hand
from libiscsi 1.19.0's public headers (``iscsi.h``, ``scsi-lowlevel.h``) for LP64
Linux (x86_64, aarch64), and a wrong field offset would read garbage. That is why:

* only what :mod:`mpath.transports.iscsi` needs is declared;
* structs are read only where libiscsi offers no accessor (``struct scsi_task``: status,
  residual, sense data); ``tests/transports/test_libiscsi.py`` pins every offset
  and a live INQUIRY / CHECK CONDITION on the rig proves them against the library;
* the one private structure read, the head of ``struct iscsi_context`` (for the
  session's CmdSN window, which 1.19.0 does not expose), is validated at run time
  against public getters before a single number is believed
  (see :func:`cmdsn_window`).

Deliberate deviations from the header, all ABI-identical on LP64:

* the ``private_data`` argument of ``iscsi_command_cb`` and of the ``*_async`` calls
  is declared ``uintptr_t`` instead of ``void *``: mpath passes an integer key there,
  never a pointer, and this saves a cast on every command in both directions;
* the callback's ``iscsi`` and ``command_data`` arguments are ``void *``: mpath does
  not use them (it keeps its own task pointer), so cffi needs no struct type for them.

This module has no policy: it loads the library and describes its types. Errors are
translated into mpath's own classes one level up, in :mod:`mpath.transports.iscsi`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cffi import FFI

#: The shared object of libiscsi 1.19.x (SONAME ``libiscsi.so.7``).
LIBRARY_NAME = "libiscsi.so.7"

CDEF = """
struct iscsi_context;
struct scsi_allocated_memory;

typedef void (*iscsi_command_cb)(void *iscsi, int status,
                                 void *command_data, uintptr_t private_data);

enum iscsi_session_type {
    ISCSI_SESSION_DISCOVERY = 1,
    ISCSI_SESSION_NORMAL    = 2
};

enum iscsi_header_digest {
    ISCSI_HEADER_DIGEST_NONE        = 0,
    ISCSI_HEADER_DIGEST_NONE_CRC32C = 1,
    ISCSI_HEADER_DIGEST_CRC32C_NONE = 2,
    ISCSI_HEADER_DIGEST_CRC32C      = 3
};

enum iscsi_transport_type {
    TCP_TRANSPORT  = 0,
    ISER_TRANSPORT = 1
};

struct iscsi_url {
    char portal[256];
    char target[256];
    char user[256];
    char passwd[256];
    char target_user[256];
    char target_passwd[256];
    int lun;
    struct iscsi_context *iscsi;
    enum iscsi_transport_type transport;
};

struct iscsi_data {
    size_t size;
    unsigned char *data;
};

struct scsi_sense {
    unsigned char error_type;
    int key;
    int ascq;
    unsigned sense_specific:1;
    unsigned ill_param_in_cdb:1;
    unsigned bit_pointer_valid:1;
    unsigned char bit_pointer;
    uint16_t field_pointer;
};

struct scsi_data {
    int size;
    unsigned char *data;
};

struct scsi_iovec {
    void *iov_base;
    size_t iov_len;
};

struct scsi_iovector {
    struct scsi_iovec *iov;
    int niov;
    int nalloc;
    size_t offset;
    int consumed;
};

struct scsi_task {
    int status;
    int cdb_size;
    int xfer_dir;
    int expxferlen;
    unsigned char cdb[16];
    int residual_status;
    size_t residual;
    struct scsi_sense sense;
    struct scsi_data datain;
    struct scsi_allocated_memory *mem;
    void *ptr;
    uint32_t itt;
    uint32_t cmdsn;
    uint32_t lun;
    struct scsi_iovector iovector_in;
    struct scsi_iovector iovector_out;
};

/* The head of libiscsi 1.19.0's private struct iscsi_context, up to is_loggedin.
   Read only by cmdsn_window(), and only after validating it (see there). */
struct mpath_iscsi_context_1_19 {
    void *drv;
    void *opaque;
    int transport;
    char initiator_name[256];
    char target_name[256];
    char target_address[256];
    char connected_portal[256];
    char portal[256];
    char alias[256];
    char bind_interfaces[256];
    char user[256];
    char passwd[256];
    char chap_c[2049];
    char target_user[256];
    char target_passwd[256];
    uint32_t target_chap_i;
    unsigned char target_chap_r[16];
    char error_string[256];
    int session_type;
    unsigned char isid[6];
    uint32_t itt;
    uint32_t cmdsn;
    uint32_t min_cmdsn_waiting;
    uint32_t expcmdsn;
    uint32_t maxcmdsn;
    uint32_t statsn;
    int want_header_digest;
    int header_digest;
    int fd;
    int is_connected;
    int is_corked;
    int tcp_user_timeout;
    int tcp_keepcnt;
    int tcp_keepintvl;
    int tcp_keepidle;
    int tcp_syncnt;
    int tcp_nonblocking;
    int current_phase;
    int next_phase;
    int secneg_phase;
    int login_attempts;
    int is_loggedin;
};

struct iscsi_context *iscsi_create_context(const char *initiator_name);
int iscsi_destroy_context(struct iscsi_context *iscsi);
int iscsi_set_targetname(struct iscsi_context *iscsi, const char *targetname);
int iscsi_set_session_type(struct iscsi_context *iscsi, enum iscsi_session_type session_type);
int iscsi_set_header_digest(struct iscsi_context *iscsi, enum iscsi_header_digest header_digest);
int iscsi_set_isid_random(struct iscsi_context *iscsi, uint32_t rnd, uint32_t qualifier);
void iscsi_set_noautoreconnect(struct iscsi_context *iscsi, int state);
int iscsi_set_timeout(struct iscsi_context *iscsi, int timeout);
const char *iscsi_get_error(struct iscsi_context *iscsi);
int iscsi_is_logged_in(struct iscsi_context *iscsi);

struct iscsi_url *iscsi_parse_full_url(struct iscsi_context *iscsi, const char *url);
void iscsi_destroy_url(struct iscsi_url *iscsi_url);

int iscsi_full_connect_async(struct iscsi_context *iscsi, const char *portal, int lun,
                             iscsi_command_cb cb, uintptr_t private_data);
int iscsi_logout_async(struct iscsi_context *iscsi, iscsi_command_cb cb,
                       uintptr_t private_data);
int iscsi_disconnect(struct iscsi_context *iscsi);
int iscsi_nop_out_async(struct iscsi_context *iscsi, iscsi_command_cb cb, unsigned char *data,
                        int len, uintptr_t private_data);

int iscsi_get_fd(struct iscsi_context *iscsi);
int iscsi_which_events(struct iscsi_context *iscsi);
int iscsi_service(struct iscsi_context *iscsi, int revents);

/* Discovery (SendTargets) and CHAP, for mpath.discovery.iscsi and logins with CHAP. */
struct iscsi_target_portal {
    struct iscsi_target_portal *next;
    const char *portal;
};

struct iscsi_discovery_address {
    struct iscsi_discovery_address *next;
    const char *target_name;
    struct iscsi_target_portal *portals;
};

int iscsi_discovery_async(struct iscsi_context *iscsi, iscsi_command_cb cb,
                          uintptr_t private_data);
int iscsi_set_initiator_username_pwd(struct iscsi_context *iscsi, const char *user,
                                     const char *passwd);
int iscsi_set_target_username_pwd(struct iscsi_context *iscsi, const char *user,
                                  const char *passwd);

int iscsi_scsi_command_async(struct iscsi_context *iscsi, int lun, struct scsi_task *task,
                             iscsi_command_cb cb, struct iscsi_data *data,
                             uintptr_t private_data);

struct scsi_task *scsi_create_task(int cdb_size, unsigned char *cdb, int xfer_dir,
                                   int expxferlen);
void scsi_free_scsi_task(struct scsi_task *task);
int scsi_task_add_data_in_buffer(struct scsi_task *task, int len, unsigned char *buf);
"""

# poll(2) event bits, as iscsi_which_events() returns them and iscsi_service() takes them.
POLLIN = 0x001
POLLOUT = 0x004

# enum scsi_xfer_dir
SCSI_XFER_NONE = 0
SCSI_XFER_READ = 1
SCSI_XFER_WRITE = 2

# enum scsi_residual
SCSI_RESIDUAL_NO_RESIDUAL = 0
SCSI_RESIDUAL_UNDERFLOW = 1
SCSI_RESIDUAL_OVERFLOW = 2

# enum scsi_status: the SCSI status byte values, plus libiscsi's own outcomes above 0xff.
SCSI_STATUS_GOOD = 0x00
SCSI_STATUS_CHECK_CONDITION = 0x02
SCSI_STATUS_CONDITION_MET = 0x04
SCSI_STATUS_REDIRECT = 0x101
SCSI_STATUS_CANCELLED = 0x0F000000
SCSI_STATUS_ERROR = 0x0F000001
SCSI_STATUS_TIMEOUT = 0x0F000002

# enum iscsi_session_type / enum iscsi_header_digest
ISCSI_SESSION_DISCOVERY = 1
ISCSI_SESSION_NORMAL = 2
ISCSI_HEADER_DIGEST_NONE = 0
ISCSI_HEADER_DIGEST_NONE_CRC32C = 1
ISCSI_HEADER_DIGEST_CRC32C = 3

#: The largest CDB ``struct scsi_task`` holds (``SCSI_CDB_MAX_SIZE``); scsi_create_task()
#: copies the CDB without checking, so callers must.
SCSI_CDB_MAX_SIZE = 16

#: The C type of every callback mpath hands to libiscsi (see the module docstring).
CALLBACK_TYPE = "void(void *, int, void *, uintptr_t)"

ffi = FFI()
ffi.cdef(CDEF)


@functools.cache
def load() -> Any:
    """Open libiscsi once per process and return the cffi library object.

    Raises :class:`OSError` when ``libiscsi.so.7`` cannot be opened; the transport turns
    that into a :class:`~mpath.transports.base.LoginError` naming the package to install.
    Opening is deferred to first use so that importing mpath never needs libiscsi.
    """
    return ffi.dlopen(LIBRARY_NAME)


def error_text(lib: Any, ctx: Any) -> str:
    """libiscsi's description of the last error on ``ctx``, as one stripped line."""
    raw = lib.iscsi_get_error(ctx)
    if raw == ffi.NULL:
        return "unknown libiscsi error"
    text: str = ffi.string(raw).decode("utf-8", errors="replace")
    return " ".join(text.split()) or "unknown libiscsi error"


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """What libiscsi's own URL parser made of a URL (used to cross-check mpath's)."""

    portal: str
    target: str
    lun: int


def libiscsi_parse_url(url: str) -> ParsedUrl | None:
    """Parse ``url`` with ``iscsi_parse_full_url``; None if libiscsi rejects it.

    mpath parses URLs itself (:mod:`mpath.transports.urls`, with clear errors); this is
    the reference the tests compare that parser against.
    """
    lib = load()
    ctx = lib.iscsi_create_context(b"iqn.2026-11.org.mpath:url-parser")
    if ctx == ffi.NULL:
        raise MemoryError("iscsi_create_context failed")
    try:
        parsed = lib.iscsi_parse_full_url(ctx, url.encode())
        if parsed == ffi.NULL:
            return None
        try:
            return ParsedUrl(
                portal=ffi.string(parsed.portal).decode(),
                target=ffi.string(parsed.target).decode(),
                lun=int(parsed.lun),
            )
        finally:
            lib.iscsi_destroy_url(parsed)
    finally:
        lib.iscsi_destroy_context(ctx)


def cmdsn_window(lib: Any, ctx: Any, *, initiator_name: bytes, target_name: bytes) -> int | None:
    """The session's current CmdSN window (MaxCmdSN - ExpCmdSN + 1), or None.

    libiscsi 1.19.0 tracks ExpCmdSN and MaxCmdSN from every response but has no public
    getter for them, so they are read from the head of its private ``struct
    iscsi_context``. That layout is only trusted when everything else in that head
    agrees with what mpath knows independently: the initiator and target names it set,
    the session type, the socket (``iscsi_get_fd``) and the login state
    (``iscsi_is_logged_in``). Any mismatch (another libiscsi build, another version)
    returns None, which the contract defines as "unknown", instead of a wrong number.
    """
    head = ffi.cast("struct mpath_iscsi_context_1_19 *", ctx)
    trusted = (
        ffi.string(head.initiator_name) == initiator_name
        and ffi.string(head.target_name) == target_name
        and head.session_type == ISCSI_SESSION_NORMAL
        and head.fd == lib.iscsi_get_fd(ctx)
        and head.fd >= 0
        and head.is_connected == 1
        and head.is_loggedin == lib.iscsi_is_logged_in(ctx) == 1
    )
    if not trusted:
        return None
    window = (int(head.maxcmdsn) - int(head.expcmdsn) + 1) & 0xFFFFFFFF
    # RFC 7143 3.2.2.1: MaxCmdSN = ExpCmdSN - 1 means a closed window (0); anything
    # beyond 2**31 is serial-number arithmetic gone wrong: report unknown.
    if window > 2**31:
        return None
    return window


def discovery_addresses(data: Any) -> list[tuple[str, list[str]]]:
    """The ``struct iscsi_discovery_address`` list a SendTargets callback receives.

    Read inside the callback (libiscsi frees the list when it returns): (target name,
    its ``TargetAddress`` strings such as ``198.18.1.2:3260,1``), in the order the
    target sent them (libiscsi builds both lists by prepending, so they are reversed).
    """
    found: list[tuple[str, list[str]]] = []
    entry = ffi.cast("struct iscsi_discovery_address *", data)
    while entry != ffi.NULL:
        addresses: list[str] = []
        portal = entry.portals
        while portal != ffi.NULL:
            if portal.portal != ffi.NULL:
                addresses.append(ffi.string(portal.portal).decode("utf-8", "replace"))
            portal = portal.next
        if entry.target_name != ffi.NULL:
            name = ffi.string(entry.target_name).decode("utf-8", "replace")
            found.append((name, addresses[::-1]))
        entry = entry.next
    return found[::-1]


def set_chap(lib: Any, ctx: Any, chap: Any) -> int:
    """Give ``ctx`` CHAP credentials (an ``mpath.config.ChapCredentials``); 0 on success.

    One-way CHAP sets the initiator's name and secret; mutual CHAP also the name and
    secret the target must answer with (libiscsi requires one-way CHAP first).
    """
    failed: int = lib.iscsi_set_initiator_username_pwd(
        ctx, chap.username.encode(), chap.password.reveal().encode()
    )
    if not failed and chap.target_username is not None and chap.target_password is not None:
        failed = lib.iscsi_set_target_username_pwd(
            ctx, chap.target_username.encode(), chap.target_password.reveal().encode()
        )
    return failed
