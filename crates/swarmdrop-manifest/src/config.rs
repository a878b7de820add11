//! Config files over documented defaults: every swarmdrop server embeds its default
//! config as commented TOML (what `--print-config` prints) and reads the user's file
//! over it, table by table, so a file names only what it changes.

/// Parses `defaults`, then `text` over it (tables merge key by key; anything else
/// replaces). Errors name `file`.
pub fn over_defaults(defaults: &str, text: &str, file: &str) -> Result<toml::Table, String> {
    let mut table: toml::Table = toml::from_str(defaults).map_err(|e| format!("{file}: {e}"))?;
    let user: toml::Table = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    merge(&mut table, user);
    Ok(table)
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_values_override_defaults_table_by_table() {
        let defaults = "a = 1\n[t]\nx = 1\ny = 2\n";
        let table = over_defaults(defaults, "[t]\ny = 3\n", "f.toml").unwrap();
        assert_eq!(table["a"].as_integer(), Some(1));
        assert_eq!(table["t"]["x"].as_integer(), Some(1));
        assert_eq!(table["t"]["y"].as_integer(), Some(3));
        let err = over_defaults(defaults, "[t\n", "f.toml").unwrap_err();
        assert!(err.starts_with("f.toml: "), "{err}");
    }
}
