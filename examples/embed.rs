//! Embedding taskbox in a Rust application: register a kind of your own, serve HTTP, submit
//! a task to yourself and print its progress until it ends.
//!
//! ```sh
//! cargo run --example embed
//! ```
//!
//! While it runs, the same task is visible over HTTP at the address it prints
//! (`GET /webservicetasks/{id}`), like any other.

use std::time::Duration;

use taskbox::{Config, Handler, NewTask, Param, Params, Registry, Service, TaskContext, TaskError};

/// A kind of our own: counts to `to` (default 5), a step every `step_ms` milliseconds
/// (default 200), reporting progress as it goes.
struct Count;

impl Handler for Count {
    fn kind(&self) -> &'static str {
        "example.count"
    }

    /// Every param the kind takes, with the longest value of each: any other is refused.
    fn params(&self) -> &[Param] {
        const PARAMS: [Param; 2] = [
            Param::new("to", 10, "the number to count to (default 5)"),
            Param::new(
                "step_ms",
                10,
                "milliseconds between two steps (default 200)",
            ),
        ];
        &PARAMS
    }

    fn validate(&self, params: &Params, _has_input: bool) -> Result<(), String> {
        for name in ["to", "step_ms"] {
            if let Some(value) = params.get(name) {
                value.parse::<u32>().map_err(|_| {
                    format!("The param {name} must be a whole number, not {value:?}.")
                })?;
            }
        }
        Ok(())
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        let number = |name, default| {
            ctx.param(name)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(default)
        };
        let (to, step_ms) = (number("to", 5).max(1), number("step_ms", 200));
        for n in 1..=to {
            std::thread::sleep(Duration::from_millis(u64::from(step_ms)));
            ctx.log(format!("counted {n}"));
            ctx.set_percent((n * 100 / to).min(99) as u8);
            ctx.set_message(format!("Counted {n} of {to}."));
            ctx.checkpoint()?;
        }
        Ok(format!("Counted to {to}."))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("taskbox-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut kinds = Registry::builtin();
    kinds.register(Count);
    let config = Config {
        db_path: dir.join("taskbox.db"),
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    let service = Service::start_with(config, kinds)?;
    println!("serving http://{}", service.addr());

    let submitted = service.submit(&NewTask::new("example.count", Params::new()))?;
    let id = submitted.task.id;
    println!("submitted task {id}");
    loop {
        let task = service.wait(id, Duration::from_millis(250))?;
        println!(
            "task {id}: {}% {:?} {}",
            task.percent_complete, task.state, task.message
        );
        if task.state.is_finished() {
            break;
        }
    }
    service.shutdown();
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
