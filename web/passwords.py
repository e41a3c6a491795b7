"""What a new staff password must be: long, not common, and hard to guess by an estimator.

- at least ``MIN_PASSWORD_LENGTH`` characters and at most ``MAX_PASSWORD_LENGTH``
  (Argon2 takes any length; the bound keeps the estimator and the hash quick);
- not one of the 20,000 common passwords of the list Django ships
  (``data/common-passwords.txt.gz``, compiled by Royce Williams from
  breached-password corpora; BSD-3-Clause, ``data/common-passwords.LICENSE``),
  compared lower-cased, with the staff member's login and name not in it either;
- a zxcvbn score of at least ``MIN_SCORE`` (0–4; 3 is "safely unguessable:
  moderate protection from offline slow-hash scenario", about 10^8 guesses).

The reason for a refusal is a sentence in Japanese for the form, and the
same in English for the command line.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128
MIN_SCORE = 3
# zxcvbn refuses longer input; what follows the 72nd character only adds strength.
_ESTIMATOR_LENGTH = 72
COMMON_PASSWORDS = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"


class PasswordPolicyError(ValueError):
    """A refused password; ``str()`` is English, ``japanese`` is for the web form."""

    def __init__(self, english: str, japanese: str) -> None:
        super().__init__(english)
        self.japanese = japanese


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip() for line in fh if line.strip())


def check_new_password(password: str, *, user_inputs: tuple[str, ...] = ()) -> None:
    """Refuse a password too weak to resist guessing (``PasswordPolicyError``)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
            f"パスワードは{MIN_PASSWORD_LENGTH}文字以上にしてください。")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"the password must have at most {MAX_PASSWORD_LENGTH} characters",
            f"パスワードは{MAX_PASSWORD_LENGTH}文字以下にしてください。")
    if password != password.strip():
        raise PasswordPolicyError("the password must not begin or end with white space",
                                  "パスワードの前後に空白を入れないでください。")
    if password.lower() in common_passwords():
        raise PasswordPolicyError("the password is on the list of common passwords",
                                  "よく使われるパスワードの一覧にあるため使えません。")
    inputs = [i for i in user_inputs if i]
    score = zxcvbn(password[:_ESTIMATOR_LENGTH], user_inputs=inputs)["score"]
    if score < MIN_SCORE:
        raise PasswordPolicyError(
            f"the password is too easy to guess (strength {score} of 4, at least"
            f" {MIN_SCORE} needed): use a longer phrase of uncommon words",
            "推測されやすいパスワードです。珍しい単語を組み合わせた長い文にしてください。")
