//! Python's `json.dumps` output, which transformers' `tojson` template filter returns
//! (`json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`,
//! `transformers/utils/chat_template_utils.py`): `", "` and `": "` between items without an
//! indent, `","` and a newline with one; floats as Python's `repr`; no HTML escaping (Jinja's own
//! `tojson` escapes `<`, `>`, `&` and `'`). serde_json does the serialising; this formatter gives
//! it Python's layout, which no crate reproduces.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

/// `json.dumps` options, named as in Python.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// Escape every non-ASCII character as `\uXXXX` (UTF-16 units).
    pub ensure_ascii: bool,
    /// Pretty-print with this indent per level (Python accepts a number of spaces or a string).
    pub indent: Option<String>,
    /// `(item_separator, key_separator)`; Python's default depends on `indent`.
    pub separators: Option<(String, String)>,
    pub sort_keys: bool,
}

/// `json.dumps(value, **options)`.
pub fn dumps<T: Serialize>(value: &T, options: &DumpOptions) -> Result<String, serde_json::Error> {
    let (item, key) = match (&options.separators, &options.indent) {
        (Some((i, k)), _) => (i.clone(), k.clone()),
        (None, Some(_)) => (",".to_string(), ": ".to_string()),
        (None, None) => (", ".to_string(), ": ".to_string()),
    };
    let formatter = PyFormatter {
        indent: options.indent.clone(),
        item,
        key,
        ensure_ascii: options.ensure_ascii,
        level: 0,
        has_value: false,
    };
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if options.sort_keys {
        sorted(serde_json::to_value(value)?).serialize(&mut ser)?;
    } else {
        value.serialize(&mut ser)?;
    }
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// `value` with every object's keys in code-point order (the order `sort_keys` gives).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// Python's `repr` of a float as `json.dumps` writes it: the shortest round-trip digits,
/// positional for exponents in -4..16 (`1e-05`, `1e+16` outside), `NaN` and `±Infinity`.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    if (-4..16).contains(&exp) {
        let plain = format!("{x}");
        return match plain.contains('.') {
            true => plain,
            false => format!("{plain}.0"),
        };
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

struct PyFormatter {
    indent: Option<String>,
    item: String,
    key: String,
    ensure_ascii: bool,
    level: usize,
    has_value: bool,
}

impl PyFormatter {
    fn newline<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        if let Some(indent) = &self.indent {
            w.write_all(b"\n")?;
            for _ in 0..self.level {
                w.write_all(indent.as_bytes())?;
            }
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.newline(w)?;
        }
        w.write_all(bracket)
    }

    fn element<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(self.item.as_bytes())?;
        }
        self.newline(w)
    }
}

impl Formatter for PyFormatter {
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, value as f64)
    }

    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        if !self.ensure_ascii {
            return w.write_all(s.as_bytes());
        }
        for c in s.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(b) => return write!(w, "\\u{b:04x}"),
        };
        w.write_all(s)
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.element(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.element(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(self.key.as_bytes())
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings from CPython 3.11 `json.dumps`.
    #[test]
    fn layouts_and_floats_match_python() {
        let v = serde_json::json!({"b": [1, 2.5, "é<&>'"], "a": {}, "c": []});
        let o = DumpOptions::default();
        assert_eq!(
            dumps(&v, &o).unwrap(),
            r#"{"a": {}, "b": [1, 2.5, "é<&>'"], "c": []}"#
        );
        let o = DumpOptions {
            indent: Some("  ".into()),
            ..Default::default()
        };
        assert_eq!(
            dumps(&serde_json::json!({"k": [1, {"x": null}]}), &o).unwrap(),
            "{\n  \"k\": [\n    1,\n    {\n      \"x\": null\n    }\n  ]\n}"
        );
        let o = DumpOptions {
            ensure_ascii: true,
            separators: Some((",".into(), ":".into())),
            ..Default::default()
        };
        assert_eq!(
            dumps(&serde_json::json!(["é😀", "\u{1}\n"]), &o).unwrap(),
            r#"["\u00e9\ud83d\ude00","\u0001\n"]"#
        );
        for (x, py) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (-0.0001, "-0.0001"),
            (123456.789, "123456.789"),
        ] {
            assert_eq!(float_repr(x), py, "{x}");
        }
    }
}
