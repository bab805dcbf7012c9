"""``camwatch hash-password``: print a hash of the dashboard's shared password for ``[dashboard]
password_hash`` (so that camwatch.toml need not hold the password in clear). The password is typed twice
without echo, or read from standard input when that is not a terminal (one line)."""

from __future__ import annotations

import argparse
import getpass
import sys

from camwatch.passwords import hash_password


def cmd_hash_password(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Dashboard password: ")
        if getpass.getpass("Again: ") != password:
            raise ValueError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise ValueError("the password needs at least 8 characters")
    print(hash_password(password))  # noqa: T201 - CLI output
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hash-password", help="print a hash of the dashboard password for [dashboard] password_hash")
    p.set_defaults(func=cmd_hash_password)
