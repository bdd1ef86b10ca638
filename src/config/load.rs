//! Reading a configuration: a TOML file (or built-in text), then `--set KEY=VALUE` overrides,
//! then [`TrainConfig::validate`]. Every error names where the offending value came from.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::error::{suggestion, ConfigError, Invalid};
use super::TrainConfig;

impl TrainConfig {
    /// Reads a config file (if any), applies `KEY=VALUE` overrides, validates.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        match file {
            Some(p) => {
                let origin = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    origin: origin.clone(),
                    source,
                })?;
                Self::from_text(&origin, &text, overrides)
            }
            None => Self::from_text("the defaults", "", overrides),
        }
    }

    /// Parses config text named `origin` (the file, for messages), applies overrides, validates.
    pub fn from_text(origin: &str, text: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Syntax {
                origin: origin.to_string(),
                message: toml_error_message(text, &e),
            })?;
        let mut origins = Origins {
            file: origin,
            in_file: table.keys().cloned().collect(),
            set: HashMap::new(),
        };
        for o in overrides {
            let arg = format!("--set {o}");
            let Some((k, v)) = o.split_once('=') else {
                return Err(ConfigError::Syntax {
                    origin: arg,
                    message: "expected KEY=VALUE".into(),
                });
            };
            let value = match format!("v = {v}").parse::<toml::Table>() {
                Ok(mut t) => t.remove("v").expect("parsed key"),
                Err(_) => toml::Value::String(v.to_string()),
            };
            table.insert(k.trim().to_string(), value);
            origins.set.insert(k.trim().to_string(), arg);
        }
        let cfg: TrainConfig = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e| origins.blame(&table, &e))?;
        cfg.validate().map_err(|e| origins.attribute(e))?;
        Ok(cfg)
    }
}

/// Where each key of a configuration came from: the file, or the `--set` argument that set it
/// last.
struct Origins<'a> {
    file: &'a str,
    in_file: HashSet<String>,
    set: HashMap<String, String>,
}

impl Origins<'_> {
    fn of(&self, key: &str) -> String {
        self.set
            .get(key)
            .map_or(self.file, String::as_str)
            .to_string()
    }

    /// The key to blame for a failed deserialization of `table`: each key is tried alone over
    /// the defaults, so that an unknown key or a bad value is named.
    fn blame(&self, table: &toml::Table, whole: &toml::de::Error) -> ConfigError {
        let known = match serde_json::to_value(TrainConfig::default()) {
            Ok(serde_json::Value::Object(fields)) => fields,
            _ => serde_json::Map::new(),
        };
        for (k, v) in table {
            if !known.contains_key(k) {
                return ConfigError::UnknownKey {
                    origin: self.of(k),
                    key: k.clone(),
                    hint: suggestion(k, known.keys().map(String::as_str)),
                };
            }
            let probe = toml::Table::from_iter([(k.clone(), v.clone())]);
            if let Err(e) = toml::Value::Table(probe).try_into::<TrainConfig>() {
                return ConfigError::Value {
                    origin: self.of(k),
                    key: k.clone(),
                    message: e.message().trim().to_string(),
                };
            }
        }
        ConfigError::Syntax {
            origin: self.file.to_string(),
            message: whole.message().trim().to_string(),
        }
    }

    /// Names a failed [`TrainConfig::validate`] check after the first of its keys given by
    /// `--set`, else the first one in the file, else the first.
    fn attribute(&self, e: Invalid) -> ConfigError {
        let key = e
            .keys
            .iter()
            .find(|k| self.set.contains_key(**k))
            .or_else(|| e.keys.iter().find(|k| self.in_file.contains(**k)))
            .unwrap_or(&e.keys[0]);
        ConfigError::Value {
            origin: self.of(key),
            key: key.to_string(),
            message: e.message,
        }
    }
}

/// A TOML syntax error in one line: where, and what.
fn toml_error_message(text: &str, e: &toml::de::Error) -> String {
    let line = e
        .span()
        .and_then(|s| text.get(..s.start))
        .map_or(1, |before| before.matches('\n').count() + 1);
    format!("not valid TOML (line {line}): {}", e.message().trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::LossType;

    #[test]
    fn overrides_apply_over_the_file() {
        let c = TrainConfig::load(
            None,
            &[
                "beta=0.0".into(),
                "loss_type=\"dr_grpo\"".into(),
                "model=foo".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.beta, c.loss_type, c.model.as_str()),
            (0.0, LossType::DrGrpo, "foo")
        );
    }

    #[test]
    fn errors_name_the_file_or_the_set_argument_and_the_key() {
        let file = "num_generations = 3\nprompts_per_step = 2\nper_device_train_batch_size = 2\n";
        let message = |text: &str, sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            TrainConfig::from_text("cfg.toml", text, &sets)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message(file, &["learning_rat=1"]),
            "--set learning_rat=1: unknown key learning_rat, did you mean learning_rate?"
        );
        assert_eq!(
            message("beta = \"high\"", &[]),
            "cfg.toml: key beta: invalid type: string \"high\", expected f64"
        );
        assert_eq!(
            message(file, &["num_generations=1"]),
            "--set num_generations=1: key num_generations: must be at least 2 (advantages are relative within a group), got 1"
        );
        // A cross-field check names the key given by --set, else one from the file.
        assert_eq!(
            message(file, &["per_device_train_batch_size=5"]),
            "--set per_device_train_batch_size=5: key per_device_train_batch_size: prompts_per_step × num_generations (2 × 3 = 6) must be divisible by per_device_train_batch_size (5)"
        );
        for (text, sets, start) in [
            (
                "prompts_per_step = 3\nper_device_train_batch_size = 5",
                &[][..],
                "cfg.toml: key per_device_train_batch_size: prompts_per_step × ",
            ),
            (
                file,
                &["reward_funcs=[\"accuracy\"]", "dataset=x.jsonl"],
                "--set reward_funcs=[\"accuracy\"]: key reward_funcs: the accuracy reward needs",
            ),
            (
                "beta = 0.1\nbeta 0.2\n",
                &[],
                "cfg.toml: not valid TOML (line 2): ",
            ),
        ] {
            let m = message(text, sets);
            assert!(m.starts_with(start), "{m}");
        }
        assert_eq!(message(file, &["beta"]), "--set beta: expected KEY=VALUE");
        let e = TrainConfig::load(Some(Path::new("/nonexistent/cfg.toml")), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    }
}
