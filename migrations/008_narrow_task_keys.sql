-- taskbox schema, version 8: the tasks' indexes keyed by numbers, not words.
--
-- Four of the tasks' indexes began with the client's name, and one held the state's name.
-- Every new task compared those words dozens of times on its way into the indexes (equal
-- words are the slow case of SQLite's record comparison), and every insert and end checked
-- the state against eight words. Profiled, that was a sixth of the writer's work per task.
--
-- 1. `clients` numbers each client once; `tasks.client_no` holds the number, and the
--    indexes that began with `client` begin with it. `tasks.client` keeps the name, which
--    reads and scope checks still use: only the indexes change.
-- 2. `tasks.state` is a number, in the order of a task's life (src/task.rs `State::code`):
--    0 scheduled, 1 queued, 2 held, 3 retrying, 4 running, 5 succeeded, 6 failed,
--    7 canceled. The ended states are those from 5 up.
-- 3. The (client, id) index is gone: a client's list of every state merges its walks of
--    the (client_no, state, id) index, one per state that holds tasks.
-- 4. Task ids are given by the store (one more than the last given), no longer by
--    AUTOINCREMENT, which read and wrote `sqlite_sequence` at every insert. So that no id
--    is ever given twice (a task's UUID is made from its id), `task_ids.last` keeps the
--    highest id deleted, and the store starts from the higher of it and the highest row.
--
-- The table is rebuilt as in version 3 (foreign keys off, see migrate.rs).

CREATE TABLE clients (
    no    INTEGER PRIMARY KEY,
    name  TEXT    NOT NULL UNIQUE
);
INSERT INTO clients (name) SELECT DISTINCT client FROM tasks ORDER BY client;

CREATE TABLE task_ids (
    one   INTEGER PRIMARY KEY CHECK (one = 1),            -- a single row
    last  INTEGER NOT NULL CHECK (last >= 0)
);
INSERT INTO task_ids (one, last)
    SELECT 1, max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'tasks'), 0),
               coalesce((SELECT max(id) FROM tasks), 0));

CREATE TABLE tasks_v8 (
    id                INTEGER PRIMARY KEY,                -- given by the store, never reused
    user_id           INTEGER NOT NULL DEFAULT 0,
    user_name         TEXT    NOT NULL DEFAULT '',
    client            TEXT    NOT NULL DEFAULT 'default',
    client_no         INTEGER NOT NULL,                   -- clients.no of `client`
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
    -- 0 scheduled, 1 queued, 2 held, 3 retrying, 4 running, 5 succeeded, 6 failed, 7 canceled
    state             INTEGER NOT NULL DEFAULT 1 CHECK (state BETWEEN 0 AND 7),
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
    -- The process instance running it (older files: also one that reserved it).
    lease_owner       TEXT,
    lease_expires_at  INTEGER,                            -- unix ms
    cancel_requested  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    log_text          BLOB,                               -- a short LOG (version 6)
    -- A running task is leased; only a queued or running one is.
    CHECK (state <> 4 OR lease_owner IS NOT NULL),
    CHECK (state = 1 OR state = 4 OR lease_owner IS NULL),
    -- A task has ended exactly when it has an end time, and then it is complete.
    CHECK ((state >= 5) = (end_time IS NOT NULL)),
    CHECK (end_time IS NULL OR percent_complete = 100)
);

INSERT INTO tasks_v8 (id, user_id, user_name, client, client_no, created_at, kind, params,
    io_filename, io_file_id, log_file_id, err_file_id, percent_complete, state, message,
    total_records, succeeded_records, duplicate_records, failed_records, due_at, start_time,
    end_time, updated_at, attempts, lease_owner, lease_expires_at, cancel_requested, log_text)
SELECT id, user_id, user_name, client, (SELECT no FROM clients WHERE name = tasks.client),
    created_at, kind, params, io_filename, io_file_id, log_file_id, err_file_id,
    percent_complete,
    CASE state WHEN 'scheduled' THEN 0 WHEN 'queued' THEN 1 WHEN 'held' THEN 2
               WHEN 'retrying' THEN 3 WHEN 'running' THEN 4 WHEN 'succeeded' THEN 5
               WHEN 'failed' THEN 6 WHEN 'canceled' THEN 7 END,  -- no other: NOT NULL stops
    message, total_records, succeeded_records, duplicate_records, failed_records, due_at,
    start_time, end_time, updated_at, attempts, lease_owner, lease_expires_at,
    cancel_requested, log_text
FROM tasks;

DROP TABLE tasks;  -- and its row of sqlite_sequence
ALTER TABLE tasks_v8 RENAME TO tasks;

-- The dispatcher's claim: queued tasks by due time. Partial, so finished tasks cost nothing.
CREATE INDEX tasks_queued_due ON tasks (due_at, id) WHERE state = 1 AND lease_owner IS NULL;
-- Recovery and shutdown: the running tasks.
CREATE INDEX tasks_leased ON tasks (lease_owner) WHERE lease_owner IS NOT NULL;
-- The list query, newest first, with its filters. A client's list of every state merges
-- one walk of tasks_client_state_id per state (src/store/query.rs): no (client, id) index.
CREATE INDEX tasks_client_state_id ON tasks (client_no, state, id);
CREATE INDEX tasks_client_kind_id ON tasks (client_no, kind, id);
CREATE INDEX tasks_client_user_id ON tasks (client_no, user_id, id);
-- The import-result query (version 5).
CREATE INDEX tasks_import_campaign ON tasks (client_no, json_extract(params, '$.campaign'), id)
    WHERE kind = 'csv.import';
