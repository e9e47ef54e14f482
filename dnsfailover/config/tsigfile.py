"""The `tsig-keygen` key-file format: `key "NAME" { algorithm ALG; secret "BASE64"; };`.

Parsed here, below both its users: `validate` (files.py) and the RFC 2136 provider's keyring
(providers/tsig.py). Imports nothing from the package.
"""

from __future__ import annotations

import re

ALGORITHM_NAMES = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1",
                   "hmac-md5")  # fmt: skip

_KEY_BLOCK = re.compile(
    r'key\s+"?(?P<name>[^"\s{]+)"?\s*\{(?P<body>[^}]*)\}', re.IGNORECASE | re.DOTALL
)
_ALGORITHM = re.compile(r"algorithm\s+\"?(?P<value>[\w-]+)\"?\s*;", re.IGNORECASE)
_SECRET = re.compile(r'secret\s+"(?P<value>[^"]+)"\s*;', re.IGNORECASE)


def parse_key_file(text: str, name: str | None) -> tuple[str, str, str]:
    """(name, algorithm, secret) of the one key block (the one named `name`, when given);
    ValueError saying what is wrong."""
    blocks = list(_KEY_BLOCK.finditer(text))
    if name is not None:
        blocks = [b for b in blocks if b["name"].rstrip(".") == name.rstrip(".")]
    if len(blocks) != 1:
        raise ValueError("no key block" if not blocks else "several key blocks (set tsig.name)")
    body = blocks[0]["body"]
    algorithm, secret = _ALGORITHM.search(body), _SECRET.search(body)
    if algorithm is None or secret is None:
        raise ValueError("needs algorithm and secret")
    if algorithm["value"].lower() not in ALGORITHM_NAMES:
        raise ValueError(f"unsupported algorithm {algorithm['value']}")
    return blocks[0]["name"], algorithm["value"].lower(), secret["value"]
