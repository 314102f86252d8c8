//! The key table ([`super::table::KEYS`]) as text: the README's parameter table and the module documentation's
//! (both generated from it, between marker comments; `tests/params_table.rs` fails if they drift and rewrites
//! them with `DINOSEG_BLESS=1`), and the constraints line of `ros2 param describe`.

use super::table::{Fallback, KeyInfo, Live, Range, ValueType, KEYS};

/// The line before the generated table.
const BEGIN: &str = "<!-- params-table:begin (generated from src/params/table.rs; to rewrite: DINOSEG_BLESS=1 \
                         cargo test --release --locked --test params_table) -->";
/// The line after it.
const END: &str = "<!-- params-table:end -->";

impl KeyInfo {
    /// The type as the README shows it: `double in [0, 1]`, `int in 1..=64`, `string`.
    fn type_text(&self) -> String {
        match (self.value_type, self.range) {
            (ValueType::Int | ValueType::Double, Some(r)) => format!("{} in {}", self.value_type.name(), r.text()),
            (t, _) => t.name().to_string(),
        }
    }

    /// What `ros2 param describe` shows as additional constraints for `key` (one this entry matches): ends a
    /// range excludes, whether it is live (or why not), the default.
    pub fn constraints(&self, key: &str) -> String {
        let mut out = Vec::new();
        if let Some(r @ Range::Double { exclusive: true, .. }) = self.range {
            out.push(format!("in {} (ends excluded)", r.text()));
        }
        out.push(self.restart_reason(key).unwrap_or_else(|| "live: takes effect on the next frame".into()));
        out.push(format!("default: {}", self.default.text().replace('`', "")));
        out.join("; ")
    }
}

/// `<` and `>` outside backticks as HTML entities (markdown would take `<id>` for a tag), `|` escaped.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut code = false;
    for c in text.chars() {
        match c {
            '`' => {
                code = !code;
                out.push(c);
            }
            '<' if !code => out.push_str("&lt;"),
            '>' if !code => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            _ => out.push(c),
        }
    }
    out
}

/// The table in markdown: key, type, default, whether it can change while the node runs, meaning; one row per
/// key of [`KEYS`], in its order.
pub fn markdown() -> String {
    let mut out = String::from("| key | type | default | live | meaning |\n|---|---|---|---|---|\n");
    for k in KEYS {
        let live = match k.live {
            Live::Yes => "yes",
            Live::Restart(_) => "no",
        };
        let meaning =
            if k.details.is_empty() { k.description.to_string() } else { format!("{}; {}", k.description, k.details) };
        let default = match k.default {
            Fallback::Derived(t) => cell(t),
            other => other.text(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {live} | {} |\n",
            k.key,
            cell(&k.type_text()),
            default,
            cell(&meaning)
        ));
    }
    out
}

/// `text` with the part between the markers replaced by `table` (each line after `prefix`, as `//! ` for a
/// module doc; the begin marker rewritten to [`BEGIN`]); None if the markers are missing.
pub fn with_table(text: &str, prefix: &str, table: &str) -> Option<String> {
    let begin = format!("{prefix}<!-- params-table:begin");
    let end = format!("{prefix}{END}");
    let start = text.find(&begin)?;
    let stop = start + text.get(start..)?.find(&end)?;
    let body: String = table.lines().map(|l| format!("{prefix}{l}\n")).collect();
    Some(format!("{}{prefix}{BEGIN}\n{body}{}", text.get(..start)?, text.get(stop..)?))
}
