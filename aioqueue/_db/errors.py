"""Database errors that mean "try again shortly": every retrying service catches these."""

from __future__ import annotations

import asyncpg

# graphile-worker's list, plus asyncpg's client-side states seen when the server restarts under
# a busy connection.
TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.OperatorInterventionError,  # class 57: admin shutdown, cannot connect now, …
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ReadOnlySQLTransactionError,  # 25006: a read-only server (failover in progress)
)
