//! Task kinds: the `Handler` trait every kind implements, and the registry that maps a
//! kind's name to its handler. The HTTP layer asks the registry to validate a submission;
//! the engine asks it for the handler that runs a claimed task.

mod csv_export;
mod csv_format;
mod csv_import;
mod debug;
mod sleep;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use csv_export::CsvExport;
pub use csv_import::CsvImport;
pub use debug::{Hang, HeldImport, Hold, Panic};
pub use sleep::Sleep;

use crate::engine::{TaskContext, TaskError};
use crate::task::Params;

/// A task kind.
pub trait Handler: Send + Sync {
    /// The kind's name, as clients submit it (`csv.import`).
    fn kind(&self) -> &'static str;

    /// Checks a submission before it is stored: the params, and whether an IO file came
    /// with it. The error is a sentence for the client that names the param at fault.
    fn validate(&self, params: &Params, has_input: bool) -> Result<(), String>;

    /// Runs the task. `Ok` ends it SUCCESS with the given message; see [`TaskError`] for
    /// the other ends.
    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError>;
}

/// The known kinds, by name.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn Handler>>,
}

impl Registry {
    /// The built-in kinds: csv.import, csv.export and sleep.
    pub fn builtin() -> Registry {
        let mut registry = Registry::default();
        registry.register(CsvImport);
        registry.register(CsvExport);
        registry.register(Sleep);
        registry
    }

    /// Adds (or replaces) a kind.
    pub fn register(&mut self, handler: impl Handler + 'static) {
        self.handlers.insert(handler.kind(), Arc::new(handler));
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(kind)
    }

    /// The names of the known kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }
}

/// The comma-separated list param `name`, without empty entries; None when absent. Entries
/// are not trimmed: they name columns exactly as written, spaces included.
fn list_param(params: &Params, name: &str) -> Option<Vec<String>> {
    params.get(name).map(|v| {
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

/// Checks the `table` param against the dataset naming rule.
fn validate_table(params: &Params) -> Result<(), String> {
    match params.get("table") {
        None => Err("The param table is required: name the dataset.".into()),
        Some(t) if !crate::store::is_valid_dataset_name(t) => Err(format!(
            "The param table is not a valid dataset name: {t:?}. Use letters, digits and _, \
             not starting with a digit, at most 64 characters."
        )),
        Some(_) => Ok(()),
    }
}

/// Checks a boolean param: absent, `true` or `false`.
fn validate_bool(params: &Params, name: &str) -> Result<(), String> {
    match params.get(name).map(String::as_str) {
        None | Some("true") | Some("false") => Ok(()),
        Some(other) => Err(format!(
            "The param {name} must be true or false, not {other:?}."
        )),
    }
}
