//! `intuitor train` and `intuitor plot`.

use std::path::PathBuf;

use clap::Args;

use crate::config::TrainConfig;

/// The shipped CPU demo configuration, used when no --config is given.
pub const DEMO_CONFIG: &str = include_str!("../../configs/demo.toml");

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// TOML config (keys: see README "Configuration"); default: the CPU demo (configs/demo.toml).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. --set beta=0.0 --set 'reward_funcs=["accuracy"]' (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Run directory (default: a new folder under runs/).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Continue the run in this directory from its latest checkpoint, exactly.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "output_dir")]
    pub resume: Option<PathBuf>,
    /// Compute dtype (the `dtype` key): auto, f32, bf16 or f16.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Stop this invocation after N steps (with a checkpoint); --resume continues the run.
    #[arg(long, value_name = "N")]
    pub stop_after: Option<usize>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// TOML config (as for `train`); default: the CPU demo (configs/demo.toml).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Override a config key (repeatable), e.g. --set gradient_checkpointing=true.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Memory to plan against, e.g. 141GB or 80GiB (default: what the device has free).
    #[arg(long, value_name = "SIZE")]
    pub device_memory: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A run directory with metrics.jsonl.
    pub run_dir: PathBuf,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let mut overrides = args.overrides.clone();
    if let Some(d) = &args.dtype {
        overrides.push(format!("dtype={}", toml::Value::String(d.clone())));
    }
    if let Some(o) = &args.output_dir {
        overrides.push(format!(
            "output_dir={}",
            toml::Value::String(o.display().to_string())
        ));
    }
    let cfg = match (&args.resume, &args.config) {
        (Some(dir), None) => TrainConfig::load(Some(&dir.join("config.toml")), &overrides)?,
        (_, Some(path)) => TrainConfig::load(Some(path), &overrides)?,
        (None, None) => {
            TrainConfig::from_text("configs/demo.toml (built in)", DEMO_CONFIG, &overrides)?
        }
    };
    crate::train::run(cfg, args.resume.as_deref(), args.stop_after)?;
    Ok(())
}

pub fn plan(args: &PlanArgs) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(path) => TrainConfig::load(Some(path), &args.overrides)?,
        None => {
            TrainConfig::from_text("configs/demo.toml (built in)", DEMO_CONFIG, &args.overrides)?
        }
    };
    let given = match args.device_memory.as_deref() {
        // A bare number would be bytes: surely a missing unit.
        Some(s) if s.trim().chars().all(|c| c.is_ascii_digit() || c == '.') => {
            anyhow::bail!("--device-memory {s:?}: give a unit, e.g. 141GB or 80GiB")
        }
        Some(s) => Some(
            crate::train::plan::parse_size(s)
                .map_err(|e| anyhow::anyhow!("--device-memory {e}"))?,
        ),
        None => None,
    };
    // A GPU run is planned without opening the GPU when its memory is given: on a machine
    // without one, or a build without CUDA.
    let cuda = matches!(
        crate::runtime::DeviceSpec::parse(&cfg.device)?,
        crate::runtime::DeviceSpec::Cuda(_)
    );
    let (cpu, available) = match crate::runtime::device(&cfg.device) {
        Ok(device) => (
            device.is_cpu(),
            given.or_else(|| crate::runtime::available_memory(&device)),
        ),
        Err(_) if cuda && given.is_some() => (false, given),
        Err(e) if cuda => anyhow::bail!(
            "device = {:?}: no CUDA GPU to open here ({e}); to plan a GPU run on this machine, give the GPU's memory: --device-memory 141GB",
            cfg.device
        ),
        Err(e) => return Err(e),
    };
    println!(
        "memory plan for {} (device = {:?})",
        match cpu {
            true => "the CPU",
            false => "a CUDA GPU",
        },
        cfg.device
    );
    let plan = crate::train::plan::fit_kv_budget(&mut cfg, available, |cfg| {
        crate::train::plan::for_config(cfg, cpu, None)
    })?;
    print!("{}", plan.table());
    match available {
        Some(bytes) => {
            plan.check_fits(bytes).map_err(anyhow::Error::msg)?;
            let from = match &args.device_memory {
                Some(s) => format!(" (--device-memory {s})"),
                None => String::new(),
            };
            println!("fits: {} available{from}", crate::train::plan::gib(bytes));
        }
        None => println!("available memory unknown; pass --device-memory to check"),
    }
    Ok(())
}

pub fn plot(args: &PlotArgs) -> anyhow::Result<()> {
    for p in crate::train::plot::plot_run(&args.run_dir)? {
        println!("{}", p.display());
    }
    Ok(())
}
