//! Live parameters: one key changed while the node runs (`ros2 param set`), validated as a params file would be.
//!
//! Only the keys the table ([`super::table`]) marks live can change: the thresholds, the output switches, the
//! colours and `node.*` but `node.threads`. Their sections are read again from the current parameters with the
//! one key replaced, by the same readers a params file goes through (so ranges, types and "no head produces
//! it" are checked alike); the other sections are kept as they are and no file is read.

use super::build::rebuild_live;
use super::errors::suggest;
use super::table;
use super::value::{Flat, ParamValue};
use super::Params;

impl Params {
    /// These parameters with `key` set to `value`, validated; or why not, naming the key: a key that cannot
    /// change while the node runs (and why), an unknown key (with the closest known one), a value of the wrong
    /// type or out of range, an output no head produces. Integers are accepted for doubles.
    /// [`ParamValue::NotSet`] restores the key's default (removes a `colors.overrides.<id>`).
    pub fn set_live(&self, key: &str, value: &ParamValue) -> Result<Params, String> {
        let mut flat = self.to_flat();
        let Some(info) = table::describe(key) else {
            let fixed = table::KEYS.iter().map(|k| k.key).filter(|k| !k.contains('<'));
            let hint = suggest(key, flat.keys().map(String::as_str).chain(fixed))
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            return Err(format!("{key}: unknown key{hint}"));
        };
        if let Some(why) = info.restart_reason(key) {
            return Err(why);
        }
        flat.insert(key.to_string(), value.clone());
        rebuild_live(&Flat::from_map(&flat), self, key)
            .map_err(|e| e.errors().iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    }
}
