"""A deterministic text description of the migrated schema, read from the catalog (no pg_dump).

Tables (reloptions, row-level security, privileges), columns (type, nullability, default,
identity), constraints, domains, indexes, enum types, sequences, triggers, policies, and
functions (full definition and privileges). The schema name is normalised to ``aioqueue``
and the owning role to ``owner``; entries are sorted in Python, so the server's collation
does not matter.

Regenerate after changing a migration (uses $AIOQUEUE_TEST_DSN, else the embedded test server
the suite uses):

    python -m tests.support.schema_snapshot > tests/db/schema_snapshot.sql
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys

import asyncpg

import aioqueue

# a role's privileges on an object, from its ACL (NULL = the built-in default)
_ACL = """
(SELECT coalesce(string_agg(x.who || ':' || x.privilege_type, ' ' ORDER BY x.who,
                            x.privilege_type), '-')
 FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                   WHEN a.grantee = {owner} THEN 'owner'
                   ELSE pg_get_userbyid(a.grantee) END AS who, a.privilege_type
       FROM aclexplode(coalesce({acl}, acldefault('{kind}', {owner}))) AS a
       -- MAINTAIN exists from PostgreSQL 17 on: left out, the snapshot holds on 15 too
       WHERE a.privilege_type <> 'MAINTAIN') AS x)
"""

CATALOG = f"""
SELECT 'table ' || c.relname
       || ' options=' || coalesce(nullif(array_to_string(
              ARRAY(SELECT o FROM unnest(c.reloptions) AS o ORDER BY o), ','), ''), '-')
       || ' rls=' || c.relrowsecurity || ' force_rls=' || c.relforcerowsecurity
       || ' acl=' || {_ACL.format(owner="c.relowner", acl="c.relacl", kind="r")}
FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       || CASE a.attidentity WHEN 'a' THEN ' identity always'
                             WHEN 'd' THEN ' identity by default' ELSE '' END
       || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0
  AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || c.relname || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
-- NOT NULL: in the column lines (catalogued as constraints only from PostgreSQL 18 on)
WHERE c.relnamespace = $1::regnamespace AND k.contype <> 'n'
UNION ALL
SELECT 'domain ' || t.typname || ' ' || format_type(t.typbasetype, t.typtypmod)
       || coalesce(' ' || k.conname || ' ' || pg_get_constraintdef(k.oid), '')
FROM pg_type t LEFT JOIN pg_constraint k ON k.contypid = t.oid
WHERE t.typnamespace = $1::regnamespace AND t.typtype = 'd'
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relnamespace = $1::regnamespace
UNION ALL
SELECT 'sequence ' || c.relname
FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'S'
UNION ALL
SELECT 'type ' || t.typname || ' ' || array_to_string(
           ARRAY(SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid
                 ORDER BY e.enumsortorder), ',')
FROM pg_type t WHERE t.typnamespace = $1::regnamespace AND t.typtype = 'e'
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(g.oid)
FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
WHERE c.relnamespace = $1::regnamespace AND NOT g.tgisinternal
UNION ALL
SELECT 'policy ' || c.relname || '.' || pol.polname || ' ' || pol.polcmd::text
       || ' using ' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), '-')
       || ' check ' || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '-')
FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
WHERE c.relnamespace = $1::regnamespace
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text
       || ' security_definer=' || p.prosecdef
       || ' acl=' || {_ACL.format(owner="p.proowner", acl="p.proacl", kind="f")}
       || E'\\n' || pg_get_functiondef(p.oid)
FROM pg_proc p WHERE p.pronamespace = $1::regnamespace
"""


async def snapshot(conn: asyncpg.Connection, schema: str) -> str:
    """The description of ``schema`` (which must be a name found nowhere else in it)."""
    rows = await conn.fetch(CATALOG, schema)
    entries = sorted(r[0].rstrip() for r in rows)
    text = "\n".join(entries) + "\n"
    return text.replace(f'"{schema}"', "aioqueue").replace(schema, "aioqueue")


async def _main() -> None:
    dsn = os.environ.get("AIOQUEUE_TEST_DSN")
    stop_after = None
    if not dsn:
        from aioqueue._db import embedded
        from tests.conftest import TEST_DATA_DIR

        if embedded.server_dsn(TEST_DATA_DIR) is None and not os.environ.get(
            "AIOQUEUE_TEST_KEEP_SERVER"
        ):
            stop_after = TEST_DATA_DIR
        dsn = embedded.ensure_server(TEST_DATA_DIR)
    schema = f"snapshot_{secrets.token_hex(6)}"
    try:
        q = await aioqueue.Queue.connect(dsn, schema=schema)
        try:
            async with q.pool.acquire() as conn:
                text = await snapshot(conn, schema)  # type: ignore[arg-type]
        finally:
            await q.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await q.close()
    finally:
        if stop_after is not None:
            embedded.stop_server(stop_after)
    sys.stdout.write(text)


if __name__ == "__main__":
    asyncio.run(_main())
