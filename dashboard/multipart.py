"""A streaming multipart/form-data reader: file parts go straight to disk under size limits.

The stdlib's ``cgi`` is deprecated (and gone in Python 3.13); ``email`` would hold a disk image in
memory. This reads ``length`` bytes from ``stream`` in chunks, writes each file part to a new
file (O_EXCL, mode 0600) in ``dest_dir`` and keeps small text fields in memory.
"""
import email.parser
import os
import re

CHUNK = 64 * 1024


class UploadError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def boundary_of(content_type):
    msg = email.parser.HeaderParser().parsestr("Content-Type: %s\n\n" % (content_type or ""))
    if msg.get_content_type() != "multipart/form-data":
        raise UploadError(400, "expected multipart/form-data")
    boundary = msg.get_param("boundary")
    if not boundary or len(boundary) > 200 or not re.match(r"^[ -~]+$", boundary):
        raise UploadError(400, "multipart/form-data without a valid boundary")
    return boundary.encode("ascii")


def safe_filename(name, default):
    """The base name of a client's file name, reduced to [A-Za-z0-9._-], never hidden or empty."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[:100]
    return base or default


class _Reader:
    def __init__(self, stream, length):
        self.stream, self.remaining = stream, length

    def read(self):
        if self.remaining <= 0:
            return b""
        data = self.stream.read(min(CHUNK, self.remaining))
        if not data:
            raise UploadError(400, "the upload ended early")
        self.remaining -= len(data)
        return data


def parse(stream, length, content_type, dest_dir, file_limits, field_limit=64 * 1024, max_parts=16):
    """-> (fields {name: str}, files {name: {"filename", "path", "size"}}).

    ``file_limits`` {field name: max bytes} names the file fields accepted; a larger part raises
    UploadError(413). Empty file parts (no file chosen) are left out.
    """
    delimiter = b"\r\n--" + boundary_of(content_type)
    reader = _Reader(stream, length)
    buf = b"\r\n"       # so that the first boundary looks like every other one
    fields, files = {}, {}

    def fill(need):
        nonlocal buf
        while len(buf) < need:
            data = reader.read()
            if not data:
                return False
            buf += data
        return True

    # preamble up to the first delimiter
    while True:
        idx = buf.find(delimiter)
        if idx >= 0:
            buf = buf[idx + len(delimiter):]
            break
        buf = buf[-len(delimiter):]
        data = reader.read()
        if not data:
            raise UploadError(400, "no multipart boundary in the body")
        buf += data

    parts = 0
    while True:
        if not fill(2):
            raise UploadError(400, "the upload ended early")
        if buf[:2] == b"--":
            return fields, files
        if buf[:2] != b"\r\n":
            raise UploadError(400, "malformed multipart body")
        buf = buf[2:]
        parts += 1
        if parts > max_parts:
            raise UploadError(400, "too many parts in the upload")
        while b"\r\n\r\n" not in buf:
            if len(buf) > 16 * 1024:
                raise UploadError(400, "multipart part headers too long")
            data = reader.read()
            if not data:
                raise UploadError(400, "the upload ended early")
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        headers = email.parser.BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        filename = headers.get_filename()
        if not name:
            raise UploadError(400, "a multipart part without a name")
        is_file = filename is not None
        if is_file and name not in file_limits:
            raise UploadError(400, "unexpected file field %r" % name)
        if name in fields or name in files:
            raise UploadError(400, "field %r given twice" % name)
        limit = file_limits[name] if is_file else field_limit
        out, path, size = None, None, 0
        value = bytearray()
        try:
            while True:
                idx = buf.find(delimiter)
                if idx >= 0:
                    chunk, buf, done = buf[:idx], buf[idx + len(delimiter):], True
                else:
                    keep = len(delimiter)
                    chunk, buf, done = buf[:-keep] if len(buf) > keep else b"", buf[-keep:], False
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise UploadError(413, "%s is larger than the limit of %d bytes" % (name, limit))
                    if is_file:
                        if out is None:
                            sub = os.path.join(dest_dir, name)    # one directory per field
                            os.mkdir(sub, 0o700)
                            path = os.path.join(sub, safe_filename(filename, name))
                            out = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
                        out.write(chunk)
                    else:
                        value += chunk
                if done:
                    break
                data = reader.read()
                if not data:
                    raise UploadError(400, "the upload ended early")
                buf += data
        finally:
            if out is not None:
                out.close()
        if is_file:
            if size:
                files[name] = {"filename": filename, "path": path, "size": size}
        else:
            try:
                fields[name] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise UploadError(400, "field %r is not UTF-8 text" % name)
