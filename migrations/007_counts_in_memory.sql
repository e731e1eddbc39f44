-- taskbox schema, version 7: the tasks per client and state are counted in memory.
--
-- Since version 3, triggers on `tasks` kept `task_counts` (the list's total, the quota of
-- unfinished tasks). Each trigger is a statement run inside the one that changed the task,
-- which makes SQLite keep a statement journal for it: about a tenth of the writer's work
-- per task. The store now counts the tasks when it opens and keeps the counts in memory,
-- moved by the writer as it commits (see src/store/counts.rs). The rows stay the truth, so
-- nothing is lost with the table.
DROP TRIGGER tasks_counted_on_insert;
DROP TRIGGER tasks_counted_on_delete;
DROP TRIGGER tasks_counted_on_update;
DROP TABLE task_counts;
