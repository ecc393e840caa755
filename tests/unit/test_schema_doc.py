"""docs/schema.md names every SQL file (versioned and repeatable): a migration added without a line there fails."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_schema_doc_lists_every_sql_file() -> None:
    doc = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    files = [*sorted((ROOT / "sql").glob("*.sql")), *sorted((ROOT / "sql" / "repeatable").glob("*.sql"))]
    assert files
    assert [f.name for f in files if f"`{f.name}`" not in doc] == []
