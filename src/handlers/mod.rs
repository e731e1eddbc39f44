//! The built-in kinds: `csv.import`, `csv.export`, `dataset.update` and `sleep`, and, in a
//! build with the feature `test-kinds` only, the diagnostic kinds tests use. Each is a
//! [`Handler`] written against the embedder's API in `kind`, exactly as an embedder's own
//! kind would be.

mod csv_export;
mod csv_format;
mod csv_import;
mod dataset_update;
#[cfg(feature = "test-kinds")]
mod debug;
mod sleep;

pub use csv_export::CsvExport;
pub use csv_import::CsvImport;
pub use dataset_update::DatasetUpdate;
pub use sleep::Sleep;

use crate::config::Config;
use crate::kind::{Param, Registry};
use crate::task::Params;

impl Registry {
    /// The built-in kinds, csv.import, csv.export, dataset.update and sleep, with their
    /// default settings (`sleep` up to [`crate::config::DEFAULT_MAX_SLEEP_SECS`]).
    pub fn builtin() -> Registry {
        Registry::builtin_with(&Config::default())
    }

    /// The built-in kinds with the settings of `config` that concern them (`max_sleep_secs`,
    /// `max_record_bytes`, `max_value_bytes`).
    pub fn builtin_with(config: &Config) -> Registry {
        let mut registry = Registry::new();
        registry.register(CsvImport);
        registry.register(CsvExport);
        registry.register(DatasetUpdate::new(
            config.max_record_bytes,
            config.max_value_bytes,
        ));
        registry.register(Sleep::new(config.max_sleep_secs));
        registry
    }

    /// Adds the diagnostic kinds (debug.panic, debug.hang, debug.hold, debug.import), which
    /// misbehave or wait on purpose so that tests can show the engine survives them and hold
    /// a task running for as long as they need. Only in a build with the feature
    /// `test-kinds` (which `cargo test` turns on), never in a release build.
    #[cfg(feature = "test-kinds")]
    #[doc(hidden)]
    pub fn register_diagnostic_kinds(&mut self) {
        use debug::{Hang, HeldImport, Hold, Panic};
        self.register(Panic);
        self.register(Hang);
        self.register(Hold);
        self.register(HeldImport);
    }
}

/// The longest list of column names a param takes (`key`, `columns`): 64 KiB, room for
/// hundreds of long names, and a bound on what a task stores.
const MAX_COLUMN_LIST: usize = 64 * 1024;

/// The param `table` of csv.import and csv.export (at most 64 bytes, as the naming rule).
const TABLE: Param = Param::new(
    "table",
    crate::store::MAX_DATASET_NAME,
    "the dataset: letters, digits and _, not starting with a digit",
);

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

/// `done` of `total` as a percentage below 100 (100 is for the task's end).
fn percent_of(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 0;
    }
    ((done.min(total) as u128 * 100 / total as u128) as u8).min(99)
}
