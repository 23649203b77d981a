"""Storage seam: connections, SQL statements, migrations, and the embedded server."""
