"""Canary writers for the text formats: plain text, HTML, RTF and mail.

* text in UTF-8, UTF-16LE (with BOM), CP1251, CP1252 or GB18030, CRLF where Windows writes it;
* HTML with its ``<meta charset>``, the banner above and below the body;
* RTF (``\\ansicpg1252`` or ``\\ansicpg1251``, ``\\'xx`` and ``\\uN?`` escapes, header, footer, info);
* mail (MIME, an encoded-word subject where it is not ASCII, a base64 attachment the caller builds).

Each writer renders a :class:`~overt.avdb.docmodel.Doc`, dropping the lines its code page cannot store. Which
documents are built is :mod:`overt.avdb.canary`'s job.
"""

from __future__ import annotations

import base64
import hashlib
import html
import struct

from overt.avdb.docmodel import Doc

# --- text, html, rtf ------------------------------------------------------------------------------------


def write_txt(doc: Doc, codec: str) -> bytes:
    """Plain text in ``codec``: LF lines for UTF-8, CRLF otherwise, a BOM for UTF-16LE."""
    doc = doc.encodable(codec)
    if codec == "utf-8":
        return ("\n\n".join(doc.lines()) + "\n").encode()
    bom = "\ufeff" if codec == "utf-16-le" else ""
    return (bom + "\r\n\r\n".join(doc.lines()) + "\r\n").encode(codec)


def write_html(doc: Doc, codec: str) -> bytes:
    """An HTML page in ``codec`` ('utf-8' or 'cp1251'), the banner above and below the body."""
    doc = doc.encodable(codec)
    e = html.escape
    banner = f'<div class="banner">{e(doc.banner)}</div>\n' if doc.banner else ""
    body = "\n".join(f"<p>{e(p)}</p>" for p in doc.body())
    charset = {"utf-8": "utf-8", "cp1251": "windows-1251"}[codec]
    page = (
        f'<!DOCTYPE html>\n<html lang="{doc.lang}">\n<head>\n<meta charset="{charset}">\n'
        f"<title>{e(doc.title)}</title>\n<style>.banner{{text-align:center;font-weight:bold;color:#c00}}</style>\n"
        f"</head>\n<body>\n{banner}<h1>{e(doc.title)}</h1>\n{body}\n{banner}</body>\n</html>\n"
    )
    return page.encode(codec)


def _rtf_escape(text: str, codec: str) -> str:
    out = []
    for ch in text:
        if ch in "\\{}":
            out.append("\\" + ch)
        elif " " <= ch < "\x7f":
            out.append(ch)
        else:
            try:
                b = ch.encode(codec)
            except UnicodeEncodeError:
                b = b""
            if len(b) == 1:
                out.append(f"\\'{b[0]:02x}")
            else:  # \uN with N signed 16-bit, one per UTF-16 unit, '?' for readers without Unicode
                units = struct.unpack(f"<{len(ch.encode('utf-16-le')) // 2}h", ch.encode("utf-16-le"))
                out.extend(f"\\u{u}?" for u in units)
    return "".join(out)


def write_rtf(doc: Doc, codec: str) -> bytes:
    """An RTF document for code page ``codec`` ('cp1252' or 'cp1251'), banner in header and footer."""
    cp = codec.removeprefix("cp")
    charset = {"1252": 0, "1251": 204}[cp]
    lang = {"en": 1033, "ru": 1049, "zh": 2052}[doc.lang]

    def x(s: str) -> str:
        return _rtf_escape(s, codec)

    edge = f"\\pard\\qc\\b {x(doc.banner)}\\b0\\par" if doc.banner else ""
    body = "\n".join(f"\\pard\\sa120 {x(p)}\\par" for p in doc.body())
    text = (
        f"{{\\rtf1\\ansi\\ansicpg{cp}\\deff0\\nouicompat\\deflang{lang}"
        f"{{\\fonttbl{{\\f0\\fnil\\fcharset{charset} Calibri;}}}}\n"
        f"{{\\info{{\\title {x(doc.title)}}}{{\\subject {x(doc.banner)}}}{{\\author Planning Cell}}"
        f"{{\\creatim\\yr2024\\mo3\\dy12\\hr10\\min15}}}}\n"
        f"{{\\header {edge}}}\n{{\\footer {edge}}}\n"
        f"\\viewkind4\\uc1 \\f0\\fs22 {edge}\n{body}\n{edge}\n}}\n"
    )
    return text.encode("ascii")


# --- mail -----------------------------------------------------------------------------------------------


def write_eml(doc: Doc, codec: str, attachment: tuple[str, str, bytes]) -> bytes:
    """A MIME message in ``codec`` with ``attachment`` (file name, media type, bytes) in base64."""
    doc = doc.encodable(codec)
    charset = {"utf-8": "utf-8", "cp1251": "windows-1251"}[codec]
    subject = f"[{doc.banner}] {doc.title}" if doc.banner else doc.title
    try:
        subject.encode("ascii")
        encoded_subject = subject
    except UnicodeEncodeError:
        encoded_subject = f"=?{charset}?B?{base64.b64encode(subject.encode(codec)).decode()}?="
    name, mime, data = attachment
    b64 = base64.b64encode(data).decode()
    b64 = "\r\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    boundary = "----=_Part_" + hashlib.sha256(doc.title.encode() + data[:64]).hexdigest()[:24]
    head = (
        "From: Planning Cell <planning@example.org>\r\nTo: Regional Office <regional@example.org>\r\n"
        f"Subject: {encoded_subject}\r\nDate: Tue, 12 Mar 2024 10:15:00 +0100\r\n"
        f"Message-ID: <{boundary[12:]}@example.org>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        "This is a multi-part message in MIME format.\r\n"
    )
    text = "\r\n\r\n".join(doc.lines()) + "\r\n"
    parts = (
        f"--{boundary}\r\nContent-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + text.encode(codec)
    parts += (
        f'\r\n--{boundary}\r\nContent-Type: {mime}; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{b64}\r\n--{boundary}--\r\n'
    ).encode()
    return head.encode() + parts
