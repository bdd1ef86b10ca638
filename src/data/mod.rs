//! Training and evaluation problems: JSONL, Parquet and CSV files, or the built-in demo set.
//!
//! A record's prompt comes from `prompt_field` (default `problem`, falling back to `question`
//! and `prompt`) or from a `messages` list; its gold answer (optional) from `answer_field`.
//! GSM8K-style answers (`… #### 42`) are reduced to the part after `####`.

pub mod batches;
pub mod code;
pub mod demo;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tokenizer::chat::Message;

/// One problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub id: String,
    /// The user message (when the record has a plain prompt).
    pub prompt: Option<String>,
    /// A full conversation (when the record has `messages`).
    pub messages: Option<Vec<Message>>,
    /// Gold answer, if known.
    pub answer: Option<String>,
    /// For a code benchmark: what running code needs to judge a completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<code::CodeTask>,
}

/// Which fields hold what.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    pub prompt_field: String,
    pub answer_field: Option<String>,
    /// The field with a code problem's tests ([`code::tests_from_json`]).
    pub tests_field: Option<String>,
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            prompt_field: "problem".into(),
            answer_field: None,
            tests_field: None,
        }
    }
}

/// A data error naming the file and the record.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} record {record}: {message}")]
    Record {
        path: PathBuf,
        record: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Loads every problem of a `.jsonl`/`.json`, `.csv` or `.parquet` file.
pub fn load(path: &Path, fields: &Fields) -> Result<Vec<Problem>, DataError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_lowercase();
    let records: Vec<serde_json::Map<String, serde_json::Value>> = match ext.as_str() {
        "jsonl" | "json" => read_jsonl(path)?,
        "csv" => read_csv(path)?,
        "parquet" => read_parquet(path)?,
        other => {
            return Err(DataError::File {
                path: path.into(),
                message: format!(
                    "unsupported extension {other:?}; expected .jsonl, .csv or .parquet"
                ),
            })
        }
    };
    if records.is_empty() {
        return Err(DataError::File {
            path: path.into(),
            message: "no records".into(),
        });
    }
    records
        .iter()
        .enumerate()
        .map(|(i, r)| to_problem(path, i + 1, r, fields))
        .collect()
}

fn to_problem(
    path: &Path,
    record: usize,
    r: &serde_json::Map<String, serde_json::Value>,
    fields: &Fields,
) -> Result<Problem, DataError> {
    let err = |message: String| DataError::Record {
        path: path.into(),
        record,
        message,
    };
    let messages = match r.get("messages") {
        Some(m) => Some(
            serde_json::from_value::<Vec<Message>>(m.clone())
                .map_err(|e| err(format!("field `messages`: {e}")))?,
        ),
        None => None,
    };
    // `Body+Question` joins several fields with a space (SVAMP keeps the story and the
    // question apart).
    let joined = fields.prompt_field.contains('+').then(|| {
        fields
            .prompt_field
            .split('+')
            .map(|k| r.get(k.trim()).map(field_text))
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join(" "))
    });
    let prompt = match joined {
        Some(p) => p,
        None => [
            fields.prompt_field.as_str(),
            "problem",
            "question",
            "prompt",
        ]
        .iter()
        .find_map(|k| r.get(*k))
        .map(field_text),
    };
    if prompt.is_none() && messages.is_none() {
        return Err(err(format!(
            "no prompt: expected field `{}` (or `problem`, `question`, `prompt`, `messages`)",
            fields.prompt_field
        )));
    }
    let answer = match &fields.answer_field {
        Some(f) => Some(gold_answer(&field_text(r.get(f).ok_or_else(|| {
            err(format!("field `{f}` (answer_field) is missing"))
        })?))),
        None => None,
    };
    let task = match &fields.tests_field {
        Some(f) => Some(
            code::tests_from_json(
                r.get(f)
                    .ok_or_else(|| err(format!("field `{f}` (tests_field) is missing")))?,
            )
            .map_err(|e| {
                err(format!(
                    "field `{f}` (tests_field): expected a list of asserts or of \
                     {{\"input\", \"output\"}} cases, got {e}"
                ))
            })?,
        ),
        None => None,
    };
    let id = r
        .get("id")
        .or_else(|| r.get("unique_id"))
        .map(field_text)
        .unwrap_or_else(|| record.to_string());
    Ok(Problem {
        id,
        prompt: if messages.is_some() { None } else { prompt },
        messages,
        answer,
        task,
    })
}

/// The gold answer of a dataset field: the part after `####` (GSM8K), else the last `\boxed{}`
/// (MATH solutions), else the text.
pub fn gold_answer(field: &str) -> String {
    use crate::answer::extract::{gsm8k_gold, last_boxed};
    if field.contains("####") {
        return gsm8k_gold(field).unwrap_or_default();
    }
    last_boxed(field).unwrap_or_else(|| field.trim().to_string())
}

/// A JSON field as text: strings as they are, anything else (numbers) in JSON form.
pub fn field_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) type Record = serde_json::Map<String, serde_json::Value>;

pub(crate) fn read_jsonl(path: &Path) -> Result<Vec<Record>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.into(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<Record>(l).map_err(|e| DataError::Record {
                path: path.into(),
                record: i + 1,
                message: format!("line {} is not a JSON object: {e}", i + 1),
            })
        })
        .collect()
}

fn read_csv(path: &Path) -> Result<Vec<Record>, DataError> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| DataError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    let headers = rdr
        .headers()
        .map_err(|e| DataError::File {
            path: path.into(),
            message: format!("header: {e}"),
        })?
        .clone();
    rdr.records()
        .enumerate()
        .map(|(i, row)| {
            let row = row.map_err(|e| DataError::Record {
                path: path.into(),
                record: i + 1,
                message: e.to_string(),
            })?;
            Ok(headers
                .iter()
                .zip(row.iter())
                .map(|(h, v)| (h.to_string(), serde_json::Value::String(v.to_string())))
                .collect())
        })
        .collect()
}

/// The `parquet` crate panics on some malformed files (assertions in its metadata and page
/// decoders, found by fuzzing): such a panic is reported as an unreadable file.
fn read_parquet(path: &Path) -> Result<Vec<Record>, DataError> {
    std::panic::catch_unwind(|| read_parquet_rows(path)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(DataError::File {
            path: path.into(),
            message: format!("not a readable Parquet file (the parquet reader panicked: {why})"),
        })
    })
}

fn read_parquet_rows(path: &Path) -> Result<Vec<Record>, DataError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let bad = |message: String| DataError::File {
        path: path.into(),
        message,
    };
    // Read whole (prompt datasets are small): a chunk that points past the end of the file then
    // fails at once instead of the reader waiting on a file that has no more bytes.
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.into(),
        source,
    })?;
    let file_len = bytes.len() as u64;
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes))
        .map_err(|e| bad(format!("not a valid Parquet file: {e}")))?;
    check_parquet_layout(&reader, file_len).map_err(bad)?;
    let rows = reader.get_row_iter(None).map_err(|e| bad(e.to_string()))?;
    rows.enumerate()
        .map(|(i, row)| {
            let row = row.map_err(|e| DataError::Record {
                path: path.into(),
                record: i + 1,
                message: e.to_string(),
            })?;
            match row.to_json_value() {
                serde_json::Value::Object(o) => Ok(o),
                other => Err(DataError::Record {
                    path: path.into(),
                    record: i + 1,
                    message: format!("expected a record, got {other}"),
                }),
            }
        })
        .collect()
}

/// Checks what the `parquet` crate trusts before it allocates (found by fuzzing, issue 22):
/// every column chunk lies inside the file, and no dictionary page claims more values than its
/// bytes can hold (PLAIN encoding takes at least one bit per value; the reader would otherwise
/// reserve the claimed count, 64 GB for a 1 KB file).
fn check_parquet_layout(
    reader: &parquet::file::reader::SerializedFileReader<bytes::Bytes>,
    file_len: u64,
) -> Result<(), String> {
    use parquet::column::page::Page;
    use parquet::file::reader::FileReader;
    for (g, group) in reader.metadata().row_groups().iter().enumerate() {
        for (c, column) in group.columns().iter().enumerate() {
            let (start, size) = column.byte_range();
            if start.checked_add(size).is_none_or(|end| end > file_len) {
                return Err(format!(
                    "row group {g}, column {c}: its chunk (bytes {start}..+{size}) extends past the end of the file"
                ));
            }
        }
        let row_group = reader.get_row_group(g).map_err(|e| e.to_string())?;
        for c in 0..group.num_columns() {
            let pages = row_group
                .get_column_page_reader(c)
                .map_err(|e| format!("row group {g}, column {c}: {e}"))?;
            for page in pages {
                let page = page.map_err(|e| format!("row group {g}, column {c}: {e}"))?;
                if let Page::DictionaryPage {
                    buf, num_values, ..
                } = &page
                {
                    if *num_values as u64 > 8 * buf.len() as u64 {
                        return Err(format!(
                            "row group {g}, column {c}: a dictionary page claims {num_values} values in {} bytes",
                            buf.len()
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gold_answers_from_gsm8k_and_math_fields() {
        assert_eq!(gold_answer("so 3+4=7\n#### 1,007"), "1007");
        assert_eq!(gold_answer("thus $\\boxed{\\frac{1}{2}}$."), "\\frac{1}{2}");
        assert_eq!(gold_answer(" 12 "), "12");
    }

    #[test]
    fn jsonl_and_csv_load_with_field_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("d.jsonl");
        std::fs::write(&j, "{\"question\": \"q1\", \"answer\": \"x #### 5\"}\n\n{\"question\": \"q2\", \"answer\": \"6\"}\n").unwrap();
        let f = Fields {
            prompt_field: "problem".into(),
            answer_field: Some("answer".into()),
            tests_field: None,
        };
        let p = load(&j, &f).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].prompt.as_deref(), Some("q1"));
        assert_eq!(p[0].answer.as_deref(), Some("5"));
        let c = dir.path().join("d.csv");
        std::fs::write(&c, "prompt,answer\n\"What is 1+1?\",2\n").unwrap();
        let p = load(&c, &f).unwrap();
        assert_eq!(p[0].prompt.as_deref(), Some("What is 1+1?"));
        assert_eq!(p[0].answer.as_deref(), Some("2"));
    }

    /// Fuzzing finds (issue 22): a dictionary page that claims 2·10⁹ values in 18 bytes (the
    /// crate reserved 64 GB) and a column chunk past the end of the file (the crate waited on
    /// the file forever) are clean errors naming the file and the column.
    #[test]
    fn malformed_parquet_layouts_are_data_errors() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/dataset_parquet");
        let f = Fields {
            prompt_field: "problem".into(),
            answer_field: None,
            tests_field: None,
        };
        for (file, want) in [
            (
                "dictionary-count-oom.parquet",
                "a dictionary page claims 2012209078 values",
            ),
            ("chunk-past-end-hang.parquet", "row group 0, column 2"),
        ] {
            let err = load(&dir.join(file), &f).unwrap_err().to_string();
            assert!(err.contains(file) && err.contains(want), "{file}: {err}");
        }
    }

    #[test]
    fn parquet_loads() {
        // tests/fixtures/problems.parquet: written by pyarrow in scripts/make_fixtures.py.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/problems.parquet");
        let f = Fields {
            prompt_field: "problem".into(),
            answer_field: Some("answer".into()),
            tests_field: None,
        };
        let p = load(&path, &f).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].prompt.as_deref(), Some("What is 2+3?"));
        assert_eq!(p[0].answer.as_deref(), Some("5"));
        assert_eq!((p[1].id.as_str(), p[1].answer.as_deref()), ("2", Some("9")));
        let e = load(&path.with_extension("txt"), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported extension"), "{e}");
    }

    #[test]
    fn bad_records_name_file_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("bad.jsonl");
        std::fs::write(&j, "{\"problem\": \"ok\"}\n{\"text\": \"no prompt\"}\n").unwrap();
        let e = load(&j, &Fields::default()).unwrap_err().to_string();
        assert!(
            e.contains("bad.jsonl record 2") && e.contains("no prompt"),
            "{e}"
        );
        std::fs::write(&j, "not json\n").unwrap();
        let e = load(&j, &Fields::default()).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
