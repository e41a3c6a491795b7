"""search indexes and the web desk's queue indexes

Japanese has no spaces between words, so search matches substrings through
trigram indexes rather than words:

- SQLite: ``messages_fts``, an FTS5 table with the trigram tokenizer over
  each message's subject and text (the FAX OCR text is the text of a FAX
  message). It is an external-content table: it keeps the index only, the
  text stays in ``messages``; triggers keep it in step with every insert,
  update and delete. A later migration that rebuilds ``messages`` (alembic's
  batch mode on SQLite copies the table) must re-create these triggers and
  run the 'rebuild' command below.
- PostgreSQL: ``pg_trgm`` and GIN trigram indexes under ``ILIKE '%…%'``.
  pg_trgm counts only letters and digits as parts of trigrams, by the
  database's LC_CTYPE: with ``C.UTF-8``, ``ja_JP.UTF-8`` or ``en_US.UTF-8``
  kana and kanji take part; under the plain ``C`` locale they do not, and the
  index cannot narrow a Japanese search (results stay right, only slower).

A term shorter than three characters has no trigram: the desk falls back to
LIKE over the messages for it (madoguchi.web.queries).

The queue pages through open tickets by (first_response_due, id): a partial
index over the tickets that are not closed serves it directly, another the
"all statuses" view; tickets merged into or following another are found by
small partial indexes.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The predicate is written exactly as madoguchi.ticketing.queues.ACTIVE writes it, with a
# literal: a planner matches a partial index only to the same literal test.
ACTIVE = "status <> 'closed'"

_SQLITE_FTS = [
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


def _queue_indexes() -> None:
    active = sa.text(ACTIVE)
    op.create_index("ix_tickets_active_due", "tickets", ["first_response_due", "id"],
                    postgresql_where=active, sqlite_where=active)
    op.create_index("ix_tickets_due_id", "tickets", ["first_response_due", "id"])
    for column in ("merged_into_id", "linked_ticket_id"):
        not_null = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_tickets_{column}", "tickets", [column],
                        postgresql_where=not_null, sqlite_where=not_null)


def upgrade() -> None:
    _queue_indexes()
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_messages_text_trgm ON messages "
                   "USING gin (text gin_trgm_ops)")
        op.execute("CREATE INDEX ix_messages_subject_trgm ON messages "
                   "USING gin (subject gin_trgm_ops)")
    else:
        raise NotImplementedError(f"search indexes on {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS messages_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_messages_subject_trgm")
        op.execute("DROP INDEX IF EXISTS ix_messages_text_trgm")
        # The extension stays: other databases' objects may use it.
    for name in ("ix_tickets_linked_ticket_id", "ix_tickets_merged_into_id",
                 "ix_tickets_due_id", "ix_tickets_active_due"):
        op.drop_index(name, table_name="tickets")
