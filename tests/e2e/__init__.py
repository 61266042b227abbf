"""End-to-end tests through real servers: the sandbox, Azurite, PostgreSQL and Meltano."""
