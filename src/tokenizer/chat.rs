//! HF chat templates rendered with minijinja, with the semantics of transformers'
//! `apply_chat_template` (`transformers/utils/chat_template_utils.py`): `trim_blocks` +
//! `lstrip_blocks`, python string methods (pycompat), `raise_exception`, `tojson` as Python's
//! `json.dumps` ([`super::pyjson`]), `strftime_now` as Python's `datetime.now().strftime`,
//! `{% generation %}` blocks rendered as their body, `continue_final_message`, and `messages`,
//! `add_generation_prompt`, `bos_token`, `eos_token` in the context.

use std::sync::OnceLock;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, TimeZone, Utc};
use minijinja::value::{Kwargs, Value};
use minijinja::{context, Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use super::pyjson::{self, DumpOptions};

/// One chat message, as in HF `messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// What transformers appends to the final message to find where it ends after rendering
/// (`continue_final_message`).
const CONTINUE_TAG: &str = "CONTINUE_FINAL_MESSAGE_TAG ";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// Further template variables (`apply_chat_template(..., **kwargs)`, e.g. Qwen3's
    /// `enable_thinking`).
    extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatTemplate {
    /// Compiles `source`; a syntax error names the line.
    pub fn new(
        source: &str,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self, Error> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", without_generation_tags(source))?;
        let mut template = Self {
            env,
            bos_token: bos_token.unwrap_or_default().to_string(),
            eos_token: eos_token.unwrap_or_default().to_string(),
            extra: serde_json::Map::new(),
        };
        template.set_clock(Clock::from_env()?);
        Ok(template)
    }

    /// Template variables passed to every render from now on, as `apply_chat_template`'s extra
    /// keyword arguments (`{"enable_thinking": false}`).
    pub fn set_extra_context(&mut self, extra: serde_json::Map<String, serde_json::Value>) {
        self.extra = extra;
    }

    /// The time `strftime_now` renders from now on.
    pub fn set_clock(&mut self, clock: Clock) {
        self.env
            .add_function("strftime_now", move |format: String| match clock {
                Clock::Local => strftime(&Local::now(), &format),
                Clock::Fixed(at) => strftime(&at, &format),
            });
    }

    /// Renders a conversation, as `apply_chat_template(messages, tokenize=False, …)`.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, Error> {
        let tmpl = self.env.get_template("chat")?;
        tmpl.render(context! {
            messages => Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
            ..Value::from(minijinja::value::Serde(&self.extra))
        })
    }

    /// Renders a conversation whose final message is continued rather than closed, as
    /// `apply_chat_template(messages, continue_final_message=True, add_generation_prompt=False)`
    /// (what TRL does for a prompt that ends with an assistant turn): the text stops right
    /// after the final message's content. `None` when the template does not render that
    /// content (it cannot be continued).
    pub fn render_continued(&self, messages: &[Message]) -> Result<Option<String>, Error> {
        let Some((last, head)) = messages.split_last() else {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "continue_final_message is set but the conversation is empty",
            ));
        };
        let mut tagged = head.to_vec();
        tagged.push(Message {
            role: last.role.clone(),
            content: format!("{}{CONTINUE_TAG}", last.content),
        });
        let rendered = self.render(&tagged, false)?;
        let tag = CONTINUE_TAG.trim();
        if !rendered.contains(last.content.trim()) {
            return Ok(None);
        }
        let Some(at) = rendered.rfind(tag) else {
            return Ok(None);
        };
        Ok(Some(match rendered[at..].starts_with(CONTINUE_TAG) {
            true => rendered[..at].to_string(),
            // The template trimmed the tag's trailing space, and with it the message's.
            false => rendered[..at].trim_end().to_string(),
        }))
    }
}

/// `{% generation %}…{% endgeneration %}` (SmolLM3's and TRL's training templates mark the
/// assistant's tokens with it) renders its body unchanged in transformers; here it becomes an
/// always-true `if` block, which keeps the tags' whitespace control and line trimming.
fn without_generation_tags(source: &str) -> String {
    static TAGS: OnceLock<(regex::Regex, regex::Regex)> = OnceLock::new();
    let (open, close) = TAGS.get_or_init(|| {
        (
            regex::Regex::new(r"\{%(-|\+)?\s*generation\s*(-|\+)?%\}").expect("valid regex"),
            regex::Regex::new(r"\{%(-|\+)?\s*endgeneration\s*(-|\+)?%\}").expect("valid regex"),
        )
    });
    let source = open.replace_all(source, "{%${1} if true ${2}%}");
    close
        .replace_all(&source, "{%${1} endif ${2}%}")
        .into_owned()
}

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)`: `json.dumps` with those arguments (positional or by name), no HTML
/// escaping.
fn tojson(
    value: &Value,
    ensure_ascii: Option<bool>,
    indent: Option<Value>,
    separators: Option<Value>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let invalid = |msg: String| Error::new(ErrorKind::InvalidOperation, msg);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.or(ensure_ascii);
    let indent = kwargs.get::<Option<Value>>("indent")?.or(indent);
    let separators = kwargs.get::<Option<Value>>("separators")?.or(separators);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            (Some(n), _) => Some(" ".repeat(n.max(0) as usize)),
            (None, Some(s)) => Some(s.to_string()),
            _ => {
                return Err(invalid(format!(
                    "tojson: indent must be a number or a string, got {v}"
                )))
            }
        },
    };
    let separators = match separators {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => {
            let parts: Vec<String> = v
                .try_iter()?
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    invalid(format!("tojson: separators must be two strings, got {v}"))
                })?;
            match <[String; 2]>::try_from(parts) {
                Ok([item, key]) => Some((item, key)),
                Err(_) => {
                    return Err(invalid(format!(
                        "tojson: separators must be two strings, got {v}"
                    )))
                }
            }
        }
    };
    let options = DumpOptions {
        ensure_ascii: ensure_ascii.unwrap_or(false),
        indent,
        separators,
        sort_keys,
    };
    pyjson::dumps(value, &options).map_err(|e| invalid(format!("tojson: {e}")))
}

/// The time `strftime_now(format)` renders, as Python's `datetime.now().strftime(format)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clock {
    /// The local clock (what transformers uses).
    Local,
    /// A fixed time, for reproducible renders and tests.
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// `Fixed` at `SOURCE_DATE_EPOCH` (seconds since 1970, the reproducible-builds convention)
    /// when that variable is set, else `Local`.
    pub fn from_env() -> Result<Self, Error> {
        let Ok(secs) = std::env::var("SOURCE_DATE_EPOCH") else {
            return Ok(Clock::Local);
        };
        let invalid = || {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("SOURCE_DATE_EPOCH must be a number of seconds since 1970, got {secs:?}"),
            )
        };
        let secs: i64 = secs.trim().parse().map_err(|_| invalid())?;
        let at = Utc.timestamp_opt(secs, 0).single().ok_or_else(invalid)?;
        Ok(Clock::Fixed(at))
    }
}

/// `at.strftime(format)` with chrono's codes (C99 / glibc's, which Python's `strftime` calls);
/// a code chrono does not know is written as it stands, as glibc does.
pub fn strftime<Tz: TimeZone>(at: &DateTime<Tz>, format: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    static CODE: OnceLock<regex::Regex> = OnceLock::new();
    let code =
        CODE.get_or_init(|| regex::Regex::new(r"%[-_0^#]?[.:]?[0-9]?.?").expect("valid regex"));
    let known = code.replace_all(format, |c: &regex::Captures| {
        let c = &c[0];
        match c {
            // Python's microseconds; `datetime.now()` is naive, so no zone.
            "%f" => "%6f".to_string(),
            "%z" | "%Z" => String::new(),
            _ if StrftimeItems::new(c).any(|i| matches!(i, Item::Error)) => c.replace('%', "%%"),
            _ => c.to_string(),
        }
    });
    at.format_with_items(StrftimeItems::new(&known)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_exception_becomes_an_error_with_its_message() {
        let t =
            ChatTemplate::new("{{ raise_exception('roles must alternate') }}", None, None).unwrap();
        let err = t.render(&[], true).unwrap_err();
        assert!(err.to_string().contains("roles must alternate"), "{err}");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{{ m.content.strip().upper() }}{% endfor %}",
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "  hi ")], false).unwrap(),
            "HI"
        );
    }

    fn render(source: &str, messages: &[Message]) -> String {
        ChatTemplate::new(source, None, None)
            .unwrap()
            .render(messages, false)
            .unwrap()
    }

    #[test]
    fn generation_blocks_render_their_body() {
        let source = "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}[{{ m.content }}]{% endif %}{% endfor %}\n{%- generation -%}\n x {%- endgeneration %}";
        let msgs = [Message::new("user", "q"), Message::new("assistant", "a")];
        assert_eq!(render(source, &msgs), "[q]ax");
    }

    #[test]
    fn strftime_follows_python_codes() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 19, 36, 5).unwrap();
        // CPython: datetime(2026, 11, 29, 19, 36, 5).strftime(...)
        for (fmt, want) in [
            ("%Y-%m-%d %H:%M", "2026-11-29 19:36"),
            ("%A", "Sunday"),
            ("%d %B %Y", "29 November 2026"),
            ("%d %b %Y %I:%M:%S %p", "29 Nov 2026 07:36:05 PM"),
            ("%j %a %y %%", "333 Sun 26 %"),
            ("%-d/%-m %Q %", "29/11 %Q %"),
            ("%H%z%Z.%f", "19.000000"),
        ] {
            assert_eq!(strftime(&at, fmt), want, "{fmt}");
        }
    }
}
