-- 002: the toolchains a worker found at start. Each worker runs every installed language's
-- version command once in a sandbox when it starts and writes what it saw here; GET
-- /languages?details=1 reports these versions. One row per language id (the last worker
-- to start wins: every worker host is expected to carry the same packages).

CREATE TABLE languages (
    id          text PRIMARY KEY,
    version     text,                      -- first line of the version command's output
    installed   boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
