//! Configuration errors. Each names where the bad value came from (the file, or the `--set`
//! argument) and, where there is one, the key. The binary exits with code 2 on a
//! [`ConfigError`] (as clap does for bad arguments) and with 1 on runtime failures.

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read the configuration")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or a `--set` argument that is not `KEY=VALUE`.
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    /// A key that [`super::TrainConfig`] does not have; `hint` suggests the nearest one.
    #[error("{origin}: unknown key {key}{hint}")]
    UnknownKey {
        origin: String,
        key: String,
        hint: String,
    },
    /// A value of the wrong type, out of range, or failing a cross-field check.
    #[error("{origin}: key {key}: {message}")]
    Value {
        origin: String,
        key: String,
        message: String,
    },
}

/// A failed check of [`super::TrainConfig::validate`]: the keys involved (the one to name first)
/// and what is wrong with them.
#[derive(Debug, thiserror::Error)]
#[error("key {}: {message}", keys[0])]
pub struct Invalid {
    pub keys: &'static [&'static str],
    pub message: String,
}

impl Invalid {
    pub(super) fn new(keys: &'static [&'static str], message: impl Into<String>) -> Self {
        Self {
            keys,
            message: message.into(),
        }
    }
}

/// `", did you mean KEY?"` for the known key nearest to `key` (at most 3 edits), else `""`.
pub(super) fn suggestion<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|&(d, _)| d <= 3 && d < key.chars().count())
        .min()
        .map_or_else(String::new, |(_, k)| format!(", did you mean {k}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_key_is_suggested_within_three_edits() {
        let keys = ["dataset", "beta", "learning_rate"];
        assert_eq!(
            suggestion("datset", keys.into_iter()),
            ", did you mean dataset?"
        );
        assert_eq!(
            suggestion("learning_rat", keys.into_iter()),
            ", did you mean learning_rate?"
        );
        assert_eq!(suggestion("bogus_option", keys.into_iter()), "");
        // A key this short matches anything within its length; no hint then.
        assert_eq!(suggestion("lr", keys.into_iter()), "");
    }
}
