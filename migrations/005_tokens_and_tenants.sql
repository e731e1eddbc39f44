-- taskbox schema, version 5: access tokens, the key behind every task's UUID, and the
-- index of the import-result query.

-- An access token. Its secret is never stored: only its SHA-256 (the secret is 256 random
-- bits, so a fast hash is as good as a slow one). A token is never deleted, only revoked,
-- so `token list` keeps its history and the service stays in authenticated mode once a
-- token has existed.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,               -- shown by `token list`, named by `token revoke`
    secret_hash  BLOB    NOT NULL CHECK (length(secret_hash) = 32),
    user_id      INTEGER NOT NULL,
    user_name    TEXT    NOT NULL,
    client       TEXT    NOT NULL,
    admin        INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    created_at   TEXT    NOT NULL,                  -- UTC, YYYY-MM-DDTHH:MM:SS
    expires_at   INTEGER,                           -- unix seconds; NULL: never
    revoked_at   TEXT                               -- UTC; NULL: in force
);

-- Moved by every change to `tokens`, by whichever process makes it (the `token` commands
-- run beside the server on the same file): a server keeps the tokens in memory and reads
-- this one row per request to learn that they changed.
CREATE TABLE token_generation (
    only  INTEGER PRIMARY KEY CHECK (only = 1),
    n     INTEGER NOT NULL
);
INSERT INTO token_generation (only, n) VALUES (1, 0);

CREATE TRIGGER tokens_changed_on_insert AFTER INSERT ON tokens BEGIN
    UPDATE token_generation SET n = n + 1;
END;
CREATE TRIGGER tokens_changed_on_update AFTER UPDATE ON tokens BEGIN
    UPDATE token_generation SET n = n + 1;
END;
CREATE TRIGGER tokens_changed_on_delete AFTER DELETE ON tokens BEGIN
    UPDATE token_generation SET n = n + 1;
END;

-- Keys the service keeps with its data. `task_uuid` is the AES-128 key that turns a task's
-- id into its UUID and back: every task has a UUID without a column or an index for it.
CREATE TABLE keys (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
) WITHOUT ROWID;
INSERT INTO keys (name, value) VALUES ('task_uuid', randomblob(16));

-- The import-result query: a client's csv.import tasks of one campaign, newest first.
-- Partial, so only imports pay for it.
CREATE INDEX tasks_import_campaign ON tasks (client, json_extract(params, '$.campaign'), id)
    WHERE kind = 'csv.import';
