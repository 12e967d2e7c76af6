"""Transports (the patent's "miniport" drivers): they carry SCSI commands on one path.

Every transport implements :class:`mpath.transports.base.Transport`; the filter layer
above never sees libiscsi, file descriptors or errno values, only
:class:`~mpath.transports.base.ScsiResult` and :class:`~mpath.transports.base.TransportError`.
"""
