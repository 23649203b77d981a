"""A deterministic text description of the migrated schema, from the catalog (no pg_dump).

Regenerate after changing a migration:

    python -m tests.schema_snapshot > tests/db/schema_snapshot.sql
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

import aioqueue

CATALOG = """
SELECT 'table ' || c.relname || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
       || CASE WHEN c.relrowsecurity THEN ' rls' ELSE '' END AS line
FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r'
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' AND a.attnum > 0
  AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || c.relname || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE c.relnamespace = $1::regnamespace
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relnamespace = $1::regnamespace
UNION ALL
SELECT 'type ' || t.typname || ' ' || array_to_string(
           ARRAY(SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid
                 ORDER BY e.enumsortorder), ',')
FROM pg_type t WHERE t.typnamespace = $1::regnamespace AND t.typtype = 'e'
UNION ALL
SELECT 'function ' || pg_get_functiondef(p.oid)
FROM pg_proc p WHERE p.pronamespace = $1::regnamespace
ORDER BY 1
"""


async def snapshot(conn: asyncpg.Connection, schema: str) -> str:
    rows = await conn.fetch(CATALOG, schema)
    text = "\n".join(r["line"] for r in rows) + "\n"
    return text.replace(f'"{schema}"', "aioqueue").replace(schema, "aioqueue")


async def _main() -> None:
    dsn = os.environ.get("AIOQUEUE_TEST_DSN")
    if not dsn:
        from aioqueue._db import embedded

        from .conftest import TEST_DATA_DIR

        dsn = embedded.ensure_server(TEST_DATA_DIR)
    schema = "snapshot_tmp"
    q = await aioqueue.Queue.connect(dsn, schema=schema)
    try:
        async with q.pool.acquire() as conn:
            sys.stdout.write(await snapshot(conn, schema))
    finally:
        await q.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await q.close()


if __name__ == "__main__":
    asyncio.run(_main())
