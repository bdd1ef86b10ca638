//! `intuitor info MODEL`.

use clap::Args;
use serde_json::json;

use super::ModelArgs;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The model: an HF directory, a .gguf file, or `default`.
    #[arg(default_value = "default")]
    pub model: String,
    /// Device to load on: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    let m = ModelArgs {
        model: args.model.clone(),
        device: args.device.clone(),
        dtype: "f32".into(),
        no_continue_final_message: false,
    }
    .load()?;
    let c = m.config();
    let tok = &m.tokenizer;
    let name = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
    let stop: Vec<String> = tok
        .stop_ids()
        .into_iter()
        .map(|i| format!("{} ({i})", tok.id_to_token(i).unwrap_or_default()))
        .collect();
    let info = json!({
        "source": m.source.path().display().to_string(),
        "architecture": c.model_type,
        "parameters": m.decoder.num_parameters(),
        "layers": c.num_hidden_layers,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "heads": c.num_attention_heads,
        "kv_heads": c.num_key_value_heads,
        "head_dim": c.head_dim,
        "rope_theta": c.rope_theta,
        "tied_embeddings": c.tie_word_embeddings,
        "tokenizer_vocab": tok.vocab_size(),
        "logits_width": c.vocab_size,
        "bos": name(tok.bos_id),
        "eos": name(tok.eos_id),
        "pad": name(tok.pad_id),
        "stop_tokens": stop,
        "chat_template": m.chat_template.is_some(),
        "chat_template_error": m.chat_template_error,
        "device": format!("{:?}", m.decoder.device()),
        "load_seconds": m.load_time.as_secs_f64(),
    });
    if args.json {
        println!("{info}");
        return Ok(());
    }
    let params = m.decoder.num_parameters() as f64;
    println!("model         {}", m.source.path().display());
    println!("architecture  {}", c.model_type);
    println!("parameters    {:.1}M ({})", params / 1e6, params);
    println!(
        "layers        {}  hidden {}  intermediate {}",
        c.num_hidden_layers, c.hidden_size, c.intermediate_size
    );
    println!(
        "heads         {} query / {} key-value, head_dim {}",
        c.num_attention_heads, c.num_key_value_heads, c.head_dim
    );
    println!("rope          theta {} {:?}", c.rope_theta, c.rope_scaling);
    println!(
        "vocabulary    tokenizer {}  logits width {}  tied embeddings {}",
        tok.vocab_size(),
        c.vocab_size,
        c.tie_word_embeddings
    );
    println!(
        "special       bos {:?}  eos {:?}  pad {:?}",
        name(tok.bos_id),
        name(tok.eos_id),
        name(tok.pad_id)
    );
    println!("stop tokens   {}", stop.join(", "));
    let template = match (&m.chat_template, &m.chat_template_error) {
        (Some(_), _) => "yes".to_string(),
        (None, Some(e)) => format!("invalid ({e})"),
        (None, None) => "no".to_string(),
    };
    println!("chat template {template}");
    println!(
        "loaded in     {:.2} s on {:?}",
        m.load_time.as_secs_f64(),
        m.decoder.device()
    );
    Ok(())
}
