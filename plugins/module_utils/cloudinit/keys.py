# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SSH public keys as customers give them (one ``authorized_keys`` line each), checked before
anything is made.

Written here rather than with ``cryptography``: the same check runs in the vm module on the
hypervisors, which need not have it, and the OpenSSH wire format is a few length-prefixed
strings (RFC 4253 section 6.6; RFC 5656; RFC 8709). Pure logic.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import re
import struct

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

# Key types and what their blob holds after the type string.
RSA, ED25519, SK_ED25519, SK_ECDSA = "ssh-rsa", "ssh-ed25519", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"
ECDSA_CURVES = {"ecdsa-sha2-nistp256": "nistp256", "ecdsa-sha2-nistp384": "nistp384", "ecdsa-sha2-nistp521": "nistp521"}
KEY_TYPES = (RSA, ED25519) + tuple(sorted(ECDSA_CURVES)) + (SK_ED25519, SK_ECDSA)
RSA_MIN_BITS = 2048
MAX_KEYS = 32
MAX_KEY_LENGTH = 16384
_COMMENT_RE = re.compile(r"^[\x20-\x7e]*$")


def _fail(field, value, rule):
    shown = value if not isinstance(value, str) or len(value) <= 60 else value[:57] + "..."
    raise ValidationError("%s=%r: %s" % (field, shown, rule), field=field)


def _strings(blob, field, value):
    """The length-prefixed strings of an OpenSSH key blob."""
    parts, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            _fail(field, value, "the key data is truncated")
        (length,) = struct.unpack(">I", blob[offset:offset + 4])
        offset += 4
        if offset + length > len(blob):
            _fail(field, value, "the key data is truncated")
        parts.append(blob[offset:offset + length])
        offset += length
    return parts


def check_public_key(value, field="ssh_authorized_keys"):
    """One OpenSSH public key line, ``TYPE BASE64 [COMMENT]``, as ``TYPE BASE64[ COMMENT]``.

    Refused: options before the type (``command=...``: a customer's key is for logging in, not
    for forcing commands on the guest's root), private keys, unknown types, data that does not
    decode or whose embedded type differs, RSA under 2048 bits, line breaks in the comment.
    """
    if not isinstance(value, str) or not value.strip():
        _fail(field, value, "must be a non-empty string: one public key, as in ~/.ssh/id_ed25519.pub")
    if len(value) > MAX_KEY_LENGTH:
        _fail(field, value, "is %d characters long, more than any public key (at most %d)" % (len(value), MAX_KEY_LENGTH))
    if "PRIVATE KEY" in value:
        _fail(field, value, "is a private key; give the public key (the .pub file) and keep the private one")
    line = value.strip()
    if "\n" in line or "\r" in line:
        _fail(field, value, "must be one key per list item (it has a line break)")
    fields = line.split(None, 2)
    key_type = fields[0]
    if key_type not in KEY_TYPES:
        if "=" in key_type or '"' in key_type or "," in key_type:
            _fail(field, value, "authorized_keys options (such as command= or from=) are not accepted; "
                                "give the key alone: TYPE BASE64 [COMMENT]")
        _fail(field, value, "key type %r is not one of %s" % (key_type, ", ".join(KEY_TYPES)))
    if len(fields) < 2:
        _fail(field, value, "has no key data after %s" % key_type)
    try:
        blob = base64.b64decode(fields[1].encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        _fail(field, value, "the key data is not base64")
    parts = _strings(blob, field, value)
    if not parts or parts[0] != key_type.encode("ascii"):
        _fail(field, value, "the key data is not a %s key" % key_type)
    _check_parts(key_type, parts[1:], field, value)
    comment = fields[2] if len(fields) > 2 else ""
    if not _COMMENT_RE.match(comment):
        _fail(field, value, "the comment must be printable ASCII")
    return " ".join(f for f in (key_type, fields[1], comment) if f)


def _check_parts(key_type, parts, field, value):
    if key_type == RSA:
        if len(parts) != 2:
            _fail(field, value, "the key data is not an RSA key (exponent, modulus)")
        modulus = parts[1].lstrip(b"\x00")
        bits = len(modulus) * 8 - (8 - modulus[0].bit_length()) if modulus else 0
        if bits < RSA_MIN_BITS:
            _fail(field, value, "RSA keys must have at least %d bits, this one has %d" % (RSA_MIN_BITS, bits))
    elif key_type in (ED25519, SK_ED25519):
        if len(parts) < 1 or len(parts[0]) != 32:
            _fail(field, value, "the key data is not an Ed25519 key (32 bytes)")
    elif key_type in ECDSA_CURVES or key_type == SK_ECDSA:
        curve = ECDSA_CURVES.get(key_type, "nistp256")
        if len(parts) < 2 or parts[0] != curve.encode("ascii") or not parts[1]:
            _fail(field, value, "the key data is not an ECDSA %s key" % curve)


def check_authorized_keys(values, field="ssh_authorized_keys"):
    """A list of public keys, each checked, duplicates (same type and data) dropped in order."""
    if values is None:
        return []
    if isinstance(values, str):
        _fail(field, values, "must be a list of public keys (one key per item)")
    try:
        values = list(values)
    except TypeError:
        _fail(field, values, "must be a list of public keys")
    if len(values) > MAX_KEYS:
        raise ValidationError("%s: at most %d keys, got %d" % (field, MAX_KEYS, len(values)), field=field)
    keys, seen = [], set()
    for number, value in enumerate(values):
        key = check_public_key(value, "%s[%d]" % (field, number))
        identity = tuple(key.split(" ")[:2])
        if identity not in seen:
            seen.add(identity)
            keys.append(key)
    return keys
