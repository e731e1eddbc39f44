//! A page of the task list as JSON text within its byte budget (`--max-list-bytes`): tasks
//! are added newest first until the next one would take the page's `data` past the budget,
//! so `limit=1000` of big tasks costs a bounded answer. A page always holds its first task,
//! however big; one cut short is shorter than its `limit`, and the client pages on from the
//! offset after its last task (the answer says which, in `X-Next-Offset`).

use super::view::write_task_json;
use crate::task::Task;

/// Appends the list's `data` to `out`: a JSON array of the tasks, in order, as long as its
/// text stays within `budget` bytes (the first task always). Returns how many it holds.
pub(super) fn write_page(out: &mut Vec<u8>, tasks: &[Task], budget: usize) -> usize {
    let start = out.len();
    out.push(b'[');
    let mut len = 0;
    for task in tasks {
        let mark = out.len();
        if len > 0 {
            out.push(b',');
        }
        write_task_json(out, task);
        // One byte more for the closing bracket.
        if len > 0 && out.len() - start + 1 > budget {
            out.truncate(mark);
            break;
        }
        len += 1;
    }
    out.push(b']');
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::webservicetasks::view::task_json;
    use crate::task::{Counts, Params, State};

    fn task(id: i64, message_len: usize) -> Task {
        let mut params = Params::new();
        params.insert("seconds".into(), "1".into());
        Task {
            id,
            uuid: String::new(),
            user_id: 0,
            user_name: String::new(),
            client: "default".into(),
            created_at: "2026-01-01T00:00:00".into(),
            kind: "sleep".into(),
            params,
            io_filename: String::new(),
            has_io_file: false,
            has_log_file: true,
            has_err_file: false,
            percent_complete: 100,
            state: State::Succeeded,
            message: "m".repeat(message_len),
            start_time: None,
            end_time: None,
            counts: Counts::default(),
            attempts: 1,
            updated_at: "2026-01-01T00:00:00".into(),
        }
    }

    fn array_of(tasks: &[Task]) -> Vec<u8> {
        let values: Vec<_> = tasks.iter().map(task_json).collect();
        serde_json::to_vec(&values).unwrap()
    }

    /// The page written after a prefix, without it, and how many tasks it holds.
    fn page(tasks: &[Task], budget: usize) -> (Vec<u8>, usize) {
        let mut out = b"prefix".to_vec();
        let len = write_page(&mut out, tasks, budget);
        assert!(out.starts_with(b"prefix"));
        (out.split_off(6), len)
    }

    #[test]
    fn a_page_within_its_budget_is_the_json_of_all_its_tasks() {
        let tasks: Vec<Task> = (1..=5).map(|i| task(i, 10)).collect();
        assert_eq!(page(&tasks, 1 << 20), (array_of(&tasks), 5));
    }

    #[test]
    fn a_page_ends_before_the_task_that_would_pass_its_budget() {
        let tasks: Vec<Task> = (1..=5).map(|i| task(i, 1000)).collect();
        let two = array_of(&tasks[..2]).len();
        for (budget, expected) in [(two, 2), (two - 1, 1), (two + 1, 2), (10, 1)] {
            let (json, len) = page(&tasks, budget);
            assert_eq!(len, expected, "budget {budget}");
            assert_eq!(json, array_of(&tasks[..expected]), "budget {budget}");
            assert!(json.len() <= budget || expected == 1);
        }
        assert_eq!(page(&[], 10), (b"[]".to_vec(), 0));
    }
}
