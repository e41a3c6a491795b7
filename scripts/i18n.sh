#!/bin/sh
# The translation catalogue: extract the Japanese msgids, update the English .po, check it.
#   scripts/i18n.sh            extract + update (then translate the new entries in the .po)
#   scripts/i18n.sh check      compile to a scratch file and report untranslated entries
# The desk reads web/locale/en/LC_MESSAGES/messages.po directly at start (no .mo is built).
set -eu
cd "$(dirname "$0")/.."
PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
POT=web/locale/messages.pot
case "${1:-update}" in
  update)
    "$PYBABEL" extract -F babel.cfg -k N_ -k say --no-wrap --sort-by-file \
      --project=Madoguchi --copyright-holder=Madoguchi -o "$POT" .
    "$PYBABEL" update -i "$POT" -d web/locale -D messages -l en --no-wrap --no-fuzzy-matching \
      --ignore-obsolete
    ;;
  check)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$PYBABEL" compile --statistics -i web/locale/en/LC_MESSAGES/messages.po -o "$tmp/messages.mo"
    ;;
  *) echo "usage: scripts/i18n.sh [update|check]" >&2; exit 2 ;;
esac
