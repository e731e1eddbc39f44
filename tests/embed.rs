//! The embedder's API, in process, with no HTTP request: a kind of the test's own is
//! registered, a task is submitted to the service directly, and its progress and end are
//! read back through the same API (what examples/embed.rs does, checked).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskbox::{
    Config, Error, Handler, NewTask, Param, Params, Registry, Service, State, TaskContext,
    TaskError,
};

/// Holds until the test releases it, reporting progress meanwhile.
struct Gate {
    open: Arc<AtomicBool>,
}

impl Handler for Gate {
    fn kind(&self) -> &'static str {
        "test.gate"
    }

    fn params(&self) -> &[Param] {
        const PARAMS: [Param; 1] = [Param::new("label", 100, "shown in the message")];
        &PARAMS
    }

    fn validate(&self, params: &Params, _has_input: bool) -> Result<(), String> {
        match params.get("label") {
            Some(_) => Ok(()),
            None => Err("The param label is required.".into()),
        }
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        ctx.set_percent(50);
        ctx.set_message("Waiting at the gate.");
        while !self.open.load(Ordering::SeqCst) {
            ctx.checkpoint()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        ctx.log("through the gate");
        Ok(format!(
            "Passed: {}.",
            ctx.param("label").unwrap_or_default()
        ))
    }
}

fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_kind_of_the_embedder_s_own_runs_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let open = Arc::new(AtomicBool::new(false));
    let mut kinds = Registry::builtin();
    kinds.register(Gate { open: open.clone() });
    let config = Config {
        db_path: dir.path().join("taskbox.db"),
        listen: "127.0.0.1:0".into(),
        workers: 2,
        ..Config::default()
    };
    let service = Service::start_with(config, kinds).unwrap();

    // Validated as over HTTP: a missing param and an unknown kind are refused, naming them.
    let mut params = Params::new();
    match service.submit(&NewTask::new("test.gate", params.clone())) {
        Err(Error::Invalid(message)) => assert!(message.contains("label"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    match service.submit(&NewTask::new("no.such.kind", Params::new())) {
        Err(Error::Invalid(message)) => assert!(message.contains("test.gate"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }

    params.insert("label".into(), "one".into());
    let id = service
        .submit(&NewTask::new("test.gate", params))
        .unwrap()
        .task
        .id;
    // Held at the gate: running, with the progress it reported.
    let running = wait_until("the task to report its progress", || {
        let task = service.task(id).unwrap();
        (task.state == State::Running && task.percent_complete == 50).then_some(task)
    });
    assert_eq!(running.message, "Waiting at the gate.");

    open.store(true, Ordering::SeqCst);
    let done = service.wait(id, Duration::from_secs(30)).unwrap();
    assert_eq!(done.state, State::Succeeded, "{done:?}");
    assert_eq!(done.message, "Passed: one.");
    assert_eq!(done.percent_complete, 100);
    assert!(done.has_log_file);
    assert!(matches!(
        service.task(id + 1000),
        Err(Error::TaskNotFound(_))
    ));
    assert!(service.shutdown().is_empty());
}

#[test]
fn an_in_process_submission_is_bounded_as_one_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        db_path: dir.path().join("taskbox.db"),
        listen: "127.0.0.1:0".into(),
        workers: 1,
        max_sleep_secs: 5,
        ..Config::default()
    };
    let mut kinds = Registry::builtin_with(&config);
    kinds.register(Gate {
        open: Arc::new(AtomicBool::new(true)),
    });
    let service = Service::start_with(config, kinds).unwrap();
    let refused = |kind: &str, pairs: &[(&str, &str)]| {
        let params: Params = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        match service.submit(&NewTask::new(kind, params)) {
            Err(Error::Invalid(message)) => message,
            other => panic!("{kind} {pairs:?}: expected Invalid, got {other:?}"),
        }
    };
    assert_eq!(
        refused("test.gate", &[("label", "x"), ("colour", "red")]),
        "The param colour is unknown for kind test.gate; known params: label."
    );
    let message = refused("test.gate", &[("label", &"x".repeat(101))]);
    assert!(
        message.contains("label") && message.contains("100 bytes"),
        "{message}"
    );
    let message = refused("sleep", &[("seconds", "6")]);
    assert!(
        message.contains("seconds") && message.contains("--max-sleep-secs"),
        "{message}"
    );
    assert!(message.contains("from 0 to 5"), "{message}");
    assert!(service.shutdown().is_empty());
}
