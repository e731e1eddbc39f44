-- taskbox schema, version 1.
--
-- The one schema of the service. It is embedded in the binary and applied at start by
-- src/store/migrate.rs; later versions append numbered steps there and move
-- PRAGMA user_version forward. The states of a task and their invariants live here as CHECK
-- constraints, so no code path can store a task that contradicts them.
--
-- The constraints spell out `a = x OR a = y OR a = z` rather than `a IN (x, y, z)`: SQLite
-- evaluates a constant IN list of more than two values by building a temporary b-tree, in
-- every statement that checks the constraint, and that cost more than the row's insert.

-- A task: one long operation submitted by a client. Mirrors the original WEBCC_SERVICE_TASK
-- table (id, user, created, IO file name, files, percent complete, status, message) plus what
-- the engine needs.
CREATE TABLE tasks (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused
    user_id           INTEGER NOT NULL DEFAULT 0,
    user_name         TEXT    NOT NULL DEFAULT '',
    client            TEXT    NOT NULL DEFAULT 'default',
    created_at        TEXT    NOT NULL,                   -- UTC, YYYY-MM-DDTHH:MM:SS
    kind              TEXT    NOT NULL,
    params            TEXT    NOT NULL DEFAULT '{}',      -- JSON object of string values
    io_filename       TEXT    NOT NULL DEFAULT '',
    -- The task's files. No foreign key: a file is only ever deleted with its task (files
    -- cascade from tasks) or when the store replaces the pointer in the same transaction,
    -- and a foreign key here would make every file deletion scan this table.
    io_file_id        INTEGER,
    log_file_id       INTEGER,
    err_file_id       INTEGER,
    percent_complete  INTEGER NOT NULL DEFAULT 0 CHECK (percent_complete BETWEEN 0 AND 100),
    status            TEXT    NOT NULL DEFAULT 'Pending'
                      CHECK (status = 'Pending' OR status = 'In progress' OR status = 'SUCCESS'
                             OR status = 'ERROR' OR status = 'CANCELED'),
    message           TEXT    NOT NULL DEFAULT '',
    total_records     INTEGER NOT NULL DEFAULT 0 CHECK (total_records >= 0),
    succeeded_records INTEGER NOT NULL DEFAULT 0 CHECK (succeeded_records >= 0),
    duplicate_records INTEGER NOT NULL DEFAULT 0 CHECK (duplicate_records >= 0),
    failed_records    INTEGER NOT NULL DEFAULT 0 CHECK (failed_records >= 0),
    due_at            INTEGER NOT NULL,                   -- unix ms: not claimed before this
    start_time        TEXT,
    end_time          TEXT,
    updated_at        TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- The process instance that claimed it: a Pending task with an owner is reserved (in
    -- that process's queue, not started); an In progress task is running there.
    lease_owner       TEXT,
    lease_expires_at  INTEGER,                            -- unix ms
    cancel_requested  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    -- A running task is leased; a finished one is not.
    CHECK (status <> 'In progress' OR lease_owner IS NOT NULL),
    CHECK (status IN ('Pending', 'In progress') OR lease_owner IS NULL),
    -- A task has ended exactly when it has an end time, and then it is complete.
    CHECK ((status = 'SUCCESS' OR status = 'ERROR' OR status = 'CANCELED') = (end_time IS NOT NULL)),
    CHECK (end_time IS NULL OR percent_complete = 100)
);

-- The dispatcher's claim: pending tasks by due time. Partial, so finished tasks cost nothing.
CREATE INDEX tasks_pending_due ON tasks (due_at, id) WHERE status = 'Pending' AND lease_owner IS NULL;
-- Recovery and shutdown: the running and reserved tasks.
CREATE INDEX tasks_leased ON tasks (lease_owner) WHERE lease_owner IS NOT NULL;
-- The list query, newest first, with its filters.
CREATE INDEX tasks_client_id ON tasks (client, id);
CREATE INDEX tasks_client_status_id ON tasks (client, status, id);
CREATE INDEX tasks_client_kind_id ON tasks (client, kind, id);
CREATE INDEX tasks_client_user_id ON tasks (client, user_id, id);

-- How many tasks each client has in each status, kept by triggers, so the list's total
-- (X-Total-Count) costs one row, not a scan of every task.
CREATE TABLE task_counts (
    client  TEXT    NOT NULL,
    status  TEXT    NOT NULL,
    n       INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (client, status)
) WITHOUT ROWID;

CREATE TRIGGER tasks_counted_on_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts (client, status, n) VALUES (NEW.client, NEW.status, 1)
        ON CONFLICT (client, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER tasks_counted_on_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1 WHERE client = OLD.client AND status = OLD.status;
END;

CREATE TRIGGER tasks_counted_on_update AFTER UPDATE OF status, client ON tasks
    WHEN OLD.status IS NOT NEW.status OR OLD.client IS NOT NEW.client
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE client = OLD.client AND status = OLD.status;
    INSERT INTO task_counts (client, status, n) VALUES (NEW.client, NEW.status, 1)
        ON CONFLICT (client, status) DO UPDATE SET n = n + 1;
END;

-- A file: an IO, LOG or ERR file of a task, stored as a sequence of chunks so that any size
-- streams in and out in bounded memory and a growing log can be appended to. A file with no
-- task_id is an upload still being received; one with a task_id is deleted with its task.
CREATE TABLE files (
    id          INTEGER PRIMARY KEY,
    task_id     INTEGER REFERENCES tasks(id) ON DELETE CASCADE,
    size        INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    -- 1 once a task points at it (tasks.io_file_id, log_file_id or err_file_id). A file
    -- still unattached at start is an upload or an output that a stop cut short: removed.
    attached    INTEGER NOT NULL DEFAULT 0 CHECK (attached IN (0, 1)),
    created_at  TEXT    NOT NULL
);
CREATE INDEX files_task ON files (task_id);
CREATE INDEX files_unattached ON files (id) WHERE attached = 0;

CREATE TABLE file_chunks (
    file_id  INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    data     BLOB    NOT NULL,
    PRIMARY KEY (file_id, seq)
);

-- Idempotency keys: a retried POST with the same key returns the task the first one created.
CREATE TABLE idempotency_keys (
    client       TEXT    NOT NULL,
    user_id      INTEGER NOT NULL,
    key          TEXT    NOT NULL,
    task_id      INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    fingerprint  TEXT    NOT NULL,                        -- kind and params, as JSON
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (client, user_id, key)
);
CREATE INDEX idempotency_keys_task ON idempotency_keys (task_id);

-- Datasets: tables that csv.import fills and csv.export reads, kept in this same file. A
-- dataset's rows live in the table ds_<id>, with columns c1..cN in header order: no name a
-- client chose ever appears in SQL, so any header (spaces, quotes, `rowid`, names equal but
-- for case) is stored exactly. `row_id` keeps import order; `task_id` names the import that
-- wrote the row, so an import that did not finish can be removed whole.
CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,                     -- as clients name it, case-sensitive
    columns     TEXT NOT NULL,                            -- JSON array of the header's names
    created_at  TEXT NOT NULL
);

-- One row per import. Its rows are visible to exports only once it is 'done':
-- 'running' while the handler inserts, 'committed' once the handler has read the whole file,
-- 'done' in the same transaction that records the task's end. Anything else is removed by
-- the next start's recovery (a crash) or by the import itself (a failure or cancellation).
CREATE TABLE dataset_imports (
    task_id     INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    state       TEXT    NOT NULL CHECK (state = 'running' OR state = 'committed' OR state = 'done')
);
CREATE INDEX dataset_imports_unfinished ON dataset_imports (dataset_id) WHERE state <> 'done';
