"""search that finds what Japanese staff type: folded text, bigrams, customer lookup keys

- ``messages.search_text``: what a message is found by (subject, text, the
  addresses; a note by its own text), folded by
  ``ticketing.rules.search_text.fold`` (NFKC, casefold, dashes). Filled here
  for the existing rows in batches, in Python, so that index and query are
  folded by the same function; written on every ORM write afterwards
  (``ticketing.search_index``).
- ``customers.search_key``, ``contacts.search_key``: names, kana readings
  and phone/FAX digits for the customer lookup.
- SQLite: ``messages_fts`` (FTS5, trigram) now indexes ``search_text``
  instead of subject and text; its triggers follow that column.
- PostgreSQL: the trigram GIN indexes of 0002 on ``text``/``subject`` give
  way to one on ``search_text`` (queried with LIKE: the text is folded
  already), and a GIN over ``madoguchi_bigrams(search_text)``, every pair of
  neighbouring characters: what a two-character term (請求, 障害, OS) is
  looked up by, as pg_trgm has no trigram for it.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from madoguchi.ticketing.rules.reading import reading
from madoguchi.ticketing.rules.search_text import lookup_key, message_document

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000

# Every pair of neighbouring characters, as the elements of a text[] (see
# ticketing.rules.search_text.bigrams): the text cut into pairs from its first
# character and again from its second, a space after each pair, split at the
# spaces. A pair holding white space falls apart into junk (one character,
# or with a newline), which no query asks for: a term has no white space.
# Two regexp_replace passes in C: about 55 µs for 115 characters, where a
# window function over the characters took 390 µs.
BIGRAMS_FUNCTION = r"""
CREATE OR REPLACE FUNCTION madoguchi_bigrams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT array_remove(string_to_array(
    regexp_replace(t, '(..)', '\1 ', 'g') || ' ' || regexp_replace(substr(t, 2), '(..)', '\1 ', 'g'),
    ' '), '')
$$
"""

_SQLITE_FTS_OLD = [
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TABLE IF EXISTS messages_fts",
]
_SQLITE_FTS = [
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        search_text, content='messages', content_rowid='id', tokenize='trigram'
    )""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, search_text) VALUES (new.id, new.search_text);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
    END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF search_text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
        INSERT INTO messages_fts(rowid, search_text) VALUES (new.id, new.search_text);
    END""",
]

# 0002's index over subject and text, for the downgrade.
_SQLITE_FTS_0002 = [
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        subject, text, content='messages', content_rowid='id', tokenize='trigram'
    )""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, subject, text) VALUES (new.id, new.subject, new.text);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, subject, text)
        VALUES ('delete', old.id, old.subject, old.text);
    END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF subject, text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, subject, text)
        VALUES ('delete', old.id, old.subject, old.text);
        INSERT INTO messages_fts(rowid, subject, text) VALUES (new.id, new.subject, new.text);
    END""",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
]


def _add_columns() -> None:
    for table in ("messages", "customers", "contacts"):
        column = "search_text" if table == "messages" else "search_key"
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column(column, sa.Text(), nullable=False,
                                          server_default=""))


def _json_list(value: Any) -> list[str]:
    if isinstance(value, str):  # SQLite hands JSON back as text
        import json

        value = json.loads(value or "[]")
    return [str(v) for v in (value or [])]


def _fill_messages(conn: sa.Connection) -> None:
    postgres = conn.dialect.name == "postgresql"
    last = 0
    while True:
        rows = conn.execute(sa.text(
            "SELECT id, channel, subject, text, sender, sender_name, recipients, cc "
            "FROM messages WHERE id > :last ORDER BY id LIMIT :n"), {"last": last, "n": _BATCH}
        ).all()
        if not rows:
            return
        ids = [r[0] for r in rows]
        docs = [message_document(
            note=r[1] == "note", subject=r[2] or "", text=r[3] or "", sender=r[4] or "",
            sender_name=r[5] or "", recipients=_json_list(r[6]), cc=_json_list(r[7]))
            for r in rows]
        if postgres:
            # The id range lets the planner read just this batch's rows of the primary
            # key (a merge join would otherwise start at the first id every time).
            conn.execute(sa.text(
                "UPDATE messages AS m SET search_text = u.s "
                "FROM unnest(CAST(:ids AS integer[]), CAST(:docs AS text[])) AS u(id, s) "
                "WHERE m.id = u.id AND m.id BETWEEN :first AND :last"),
                {"ids": ids, "docs": docs, "first": ids[0], "last": ids[-1]})
        else:
            conn.execute(sa.text("UPDATE messages SET search_text = :s WHERE id = :id"),
                         [{"id": i, "s": d} for i, d in zip(ids, docs, strict=True)])
        last = ids[-1]


def _fill_directory(conn: sa.Connection) -> None:
    for row in conn.execute(sa.text("SELECT id, company, department FROM customers")).all():
        key = lookup_key(row[1] or "", row[2] or "", readings=[reading(row[1] or "")])
        conn.execute(sa.text("UPDATE customers SET search_key = :k WHERE id = :id"),
                     {"k": key, "id": row[0]})
    for row in conn.execute(sa.text("SELECT id, name, phone, fax FROM contacts")).all():
        key = lookup_key(row[1] or "", readings=[reading(row[1] or "")],
                         numbers=[row[2] or "", row[3] or ""])
        conn.execute(sa.text("UPDATE contacts SET search_key = :k WHERE id = :id"),
                     {"k": key, "id": row[0]})


def upgrade() -> None:
    conn = op.get_bind()
    dialect = conn.dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_FTS_OLD:  # before the column fill: its triggers would fire
            op.execute(statement)
    _add_columns()
    _fill_messages(conn)
    _fill_directory(conn)
    if dialect == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
        op.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_messages_subject_trgm")
        op.execute("DROP INDEX IF EXISTS ix_messages_text_trgm")
        op.execute("CREATE INDEX ix_messages_search_trgm ON messages "
                   "USING gin (search_text gin_trgm_ops)")
        op.execute(BIGRAMS_FUNCTION)
        op.execute("CREATE INDEX ix_messages_search_bigrams ON messages "
                   "USING gin (madoguchi_bigrams(search_text))")
        # The planner judges LIKE '%…%' by the column's histogram: with the default
        # 100 entries a phrase in one message in 2,000 looks like 1 % of them, and it
        # reads the primary key newest first (1.5 s at 1 M messages) instead of the
        # trigram index (4 ms). 1,000 entries tell them apart; the ANALYZE (about a
        # minute at 1 M messages, a 300,000-row sample whatever the size) makes it so
        # now rather than at autovacuum's next pass.
        op.execute("ALTER TABLE messages ALTER COLUMN search_text SET STATISTICS 1000")
        op.execute("ANALYZE messages")
    else:
        raise NotImplementedError(f"search indexes on {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_FTS_OLD:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_messages_search_bigrams")
        op.execute("DROP INDEX IF EXISTS ix_messages_search_trgm")
        op.execute("DROP FUNCTION IF EXISTS madoguchi_bigrams(text)")
    for table in ("messages", "customers", "contacts"):
        # Plain DROP COLUMN (SQLite 3.35+): a batch copy of customers or messages
        # would drop tables that others' foreign keys name.
        column = "search_text" if table == "messages" else "search_key"
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    if dialect == "sqlite":
        for statement in _SQLITE_FTS_0002:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute("CREATE INDEX ix_messages_text_trgm ON messages "
                   "USING gin (text gin_trgm_ops)")
        op.execute("CREATE INDEX ix_messages_subject_trgm ON messages "
                   "USING gin (subject gin_trgm_ops)")
