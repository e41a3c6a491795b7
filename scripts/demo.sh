#!/usr/bin/env bash
# First command of the README: set everything up and run the desk on the
# embedded default (SQLite, a demo mailbox seeded with Japanese samples).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Two products (ChatLuck, All Gather CRM), the demo's mailbox and FAX spool.
export MADOGUCHI_CONFIG=demo/madoguchi.toml
.venv/bin/madoguchi demo
# Leave the staff web desk running on the demo data; it prints its address
# and a demo supervisor login (Ctrl-C stops it).
exec .venv/bin/madoguchi web --demo-user
