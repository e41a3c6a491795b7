#!/usr/bin/env bash
# Installs what Madoguchi needs on Debian 12 (system packages and a virtualenv).
#   scripts/setup.sh          the desk: OCR, PDF tools, fonts, Python packages
#   scripts/setup.sh --test   also the real servers the tests start: Dovecot,
#                             PostgreSQL, Chromium
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(python3 python3-venv python3-dev gcc tesseract-ocr tesseract-ocr-jpn
          poppler-utils fonts-noto-cjk fonts-ipafont fonts-dejavu-core libtiff-tools)
if [[ "${1:-}" == "--test" ]]; then
    # fonts-liberation: the FAX corpus types digits in it (bench/fax_corpus.py);
    # without it the generated pages, and what the tests read off them, differ.
    packages+=(dovecot-imapd postgresql chromium fonts-liberation)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    echo "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || { echo "Python 3.11 or newer is needed" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
extra=""
[[ "${1:-}" == "--test" ]] && extra="[test]"
.venv/bin/python -m pip install -q -e ".${extra}"
