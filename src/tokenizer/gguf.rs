//! Builds a byte-level BPE tokenizer from GGUF `tokenizer.ggml.*` metadata.
//!
//! candle's `TokenizerFromGguf` adds a prefix space for `tokenizer.ggml.pre = "smollm"` ("Hello" →
//! "ĠHello"; stack-notes), so the pipeline is assembled here from the `tokenizers` crate's parts:
//! BPE model from tokens + merges, a pre-tokenizer chosen by `tokenizer.ggml.pre`, the ByteLevel
//! decoder, and every `token_type == 3` (control) entry as a special added token.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use super::TextTokenizer;
use crate::model::gguf::GgufFile;
use crate::model::LoadError;

/// GGUF token type of control tokens (`<|im_start|>`, `<|endoftext|>`, …).
const CONTROL: i64 = 3;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

pub fn from_gguf(g: &GgufFile) -> Result<TextTokenizer, LoadError> {
    let bad = |m: String| LoadError::invalid(&g.path, m);
    let model = g.string("tokenizer.ggml.model").unwrap_or("");
    if model != "gpt2" {
        return Err(bad(format!(
            "tokenizer.ggml.model is {model:?}; only byte-level BPE (\"gpt2\") is supported"
        )));
    }
    let tokens = g.strings("tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = g
        .strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| bad(format!("malformed merge {m:?}")))
        })
        .collect::<Result<_, _>>()?;
    let types = g.ints("tokenizer.ggml.token_type").unwrap_or_default();
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| bad(format!("building BPE: {e}")))?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let pre: PreTokenizerWrapper = match g.string("tokenizer.ggml.pre").unwrap_or("default") {
        "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
        "llama-bpe" | "llama3" => split_then_bytes(LLAMA3_SPLIT).map_err(&bad)?,
        "qwen2" => split_then_bytes(QWEN2_SPLIT).map_err(&bad)?,
        _ => byte_level.into(),
    };
    inner.with_pre_tokenizer(Some(pre));
    inner.with_decoder(Some(ByteLevelDecoder::default()));
    let specials: Vec<AddedToken> = tokens
        .iter()
        .zip(types.iter())
        .filter(|(_, &ty)| ty == CONTROL)
        .map(|(t, _)| AddedToken::from(t.clone(), true))
        .collect();
    inner
        .add_special_tokens(specials)
        .map_err(|e| bad(format!("adding special tokens: {e}")))?;
    let mut tok = TextTokenizer::new(inner);
    let name = |key: &str| g.u32(key).and_then(|id| tokens.get(id as usize).cloned());
    tok.bos_token = name("tokenizer.ggml.bos_token_id");
    tok.eos_token = name("tokenizer.ggml.eos_token_id");
    tok.pad_token = name("tokenizer.ggml.padding_token_id");
    tok.add_bos = matches!(
        g.get("tokenizer.ggml.add_bos_token"),
        Some(candle_core::quantized::gguf_file::Value::Bool(true))
    );
    tok.resolve_ids();
    Ok(tok)
}

fn split_then_bytes(pattern: &str) -> Result<PreTokenizerWrapper, String> {
    let split = Split::new(
        SplitPattern::Regex(pattern.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| format!("bad split regex: {e}"))?;
    Ok(Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, true, false).into(),
    ])
    .into())
}
