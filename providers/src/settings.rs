//! Provider settings through their Nickel schemas: the one way every provider of this crate reads
//! `providers.NAME` (the engine's `config::settings` checks; serde reads the checked value).

use prov_engine::config::{check_settings, SettingsSchema};
use prov_engine::registry::ExtContext;
use prov_engine::traits::{ErrorKind, ExtError, ExtResult};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// `settings` checked against `schema` and read into `T`; every problem as
/// `providers.NAME.KEY: message`.
pub fn read<T: DeserializeOwned>(
    name: &str,
    schema: &SettingsSchema,
    settings: &Value,
) -> Result<T, Vec<String>> {
    let section = format!("providers.{name}");
    let checked = check_settings(schema, settings).map_err(|problems| {
        problems
            .iter()
            .map(|p| p.under(&section))
            .collect::<Vec<_>>()
    })?;
    // The schema accepted it: a value serde refuses is a disagreement between the schema and
    // the struct (a bug, caught by each provider's tests), named without the value.
    serde_json::from_value(checked).map_err(|e| {
        vec![format!(
            "{section}: the checked settings do not fit the provider ({}): {e}",
            schema.display()
        )]
    })
}

/// [`read`] for a provider being built: the problems as one error of the `load` operation.
pub fn read_for<T: DeserializeOwned>(ctx: &ExtContext, schema: &SettingsSchema) -> ExtResult<T> {
    read(&ctx.name, schema, &ctx.settings)
        .map_err(|errs| ExtError::new(&ctx.name, "load", None, ErrorKind::Invalid, errs.join("; ")))
}

#[cfg(test)]
pub mod testing {
    //! Shared checks of the providers' settings tests.

    use prov_engine::config::SettingsSchema;

    /// The top-level keys of the markdown table in `module_doc`: the backquoted names in the
    /// first column of its `//! | `key` | ...` rows (`api.timeout` counts as `api`), sorted.
    pub fn table_keys(module_doc: &str) -> Vec<String> {
        let mut keys: Vec<String> = module_doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split(" |").next())
            .flat_map(|cell| {
                format!("`{cell}")
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(|k| k.split('.').next().unwrap_or(k).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The schema's keys, sorted.
    pub fn schema_keys(schema: &SettingsSchema) -> Vec<String> {
        let mut keys =
            prov_engine::config::settings::schema_fields(schema).expect("schema evaluates");
        keys.sort();
        keys
    }
}
