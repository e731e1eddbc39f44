-- taskbox schema, version 2: where each import's rows start.
--
-- A dataset's rows were indexed by the import (task) that wrote them, so that an import
-- that did not finish could be removed fast; keeping that index cost a third of every row's
-- insert. Imports into one dataset run one at a time and rows take increasing ids, so an
-- import's rows all lie after the last row stored when it began: that row id is kept here,
-- and removing an import deletes by row id from there (the task id still decides which
-- rows). Datasets made before this version keep their index; it is still correct.
ALTER TABLE dataset_imports ADD COLUMN after_row INTEGER NOT NULL DEFAULT 0;
