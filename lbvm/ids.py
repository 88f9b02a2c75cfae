"""VE ids and host names that may reach a command line: checked once, in one place.

Nothing that fails these checks is ever put in an argv: no options (leading '-'), no paths,
no whitespace or newlines, no shell metacharacters.
"""

from __future__ import annotations

import re

from lbvm.errors import ExecutorError

VE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
PROXMOX_ID = re.compile(r"[1-9][0-9]{2,8}")  # pct(1)/qm(1): vmid 100 - 999999999
# RFC 1123 labels (letters, digits, inner '-'), plus '_' which the spool accepts in node names.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
HOST = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")


def check_ve(ve: str, *, numeric: bool = False) -> str:
    """Return ``ve`` if it is a safe VE id, else raise ExecutorError naming it."""
    if numeric:
        if not isinstance(ve, str) or not PROXMOX_ID.fullmatch(ve):
            raise ExecutorError(f"VE id {ve!r} is not a Proxmox vmid (an integer 100-999999999)")
    elif not isinstance(ve, str) or not VE_ID.fullmatch(ve):
        raise ExecutorError(
            f"VE id {ve!r} is not valid: letters, digits and . _ : @ - only, 1-128 characters"
        )
    return ve


def check_host(host: str) -> str:
    """Return ``host`` if it is an RFC-1123 host name (or dotted IPv4), else raise."""
    if not isinstance(host, str) or not HOST.fullmatch(host):
        raise ExecutorError(f"host name {host!r} is not a valid RFC-1123 name")
    return host
