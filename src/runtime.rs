//! Process start-up: allocator tuning and device choice.

use candle_core::Device;

/// Keeps freed memory in the process instead of returning it to the OS.
///
/// candle allocates a fresh buffer for every op output; glibc hands large blocks back to the
/// kernel with `munmap` and the page faults on re-allocation cost ~20% of a training step
/// (stack-notes "Allocator"). Disabling mmap for large blocks and raising the trim threshold and
/// top pad (the `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=… MALLOC_TOP_PAD_=…` settings)
/// made a step ~1.5× faster. Settings from the environment win: glibc reads those variables
/// itself, so nothing is changed when any of them is set.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_set = [
            "MALLOC_MMAP_MAX_",
            "MALLOC_TRIM_THRESHOLD_",
            "MALLOC_TOP_PAD_",
        ]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
        if !user_set {
            // SAFETY: mallopt only changes allocator parameters; it is called before any thread
            // is started.
            unsafe {
                libc::mallopt(libc::M_MMAP_MAX, 0);
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
                libc::mallopt(libc::M_TOP_PAD, 1_000_000_000);
            }
        }
    }
}

/// Hands the allocator's free memory back to the OS (`malloc_trim`), for the points of a run
/// where the set of live buffers changes: with [`tune_allocator`]'s settings glibc never trims
/// by itself, so without this the heap stays at the largest size any phase needed, and the
/// next phase's large buffers (a rollout's KV cache, an update's activations) land in
/// fragments of it instead of reusing it (a rollout that copied the weights, an earlier
/// version, cost +300 MB of peak RSS that way).
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Pins the CPU thread count once. candle asks for it on every matmul and, when
/// `RAYON_NUM_THREADS` is unset, re-reads the cgroup and CPU files of /proc each time (seen in
/// a profile as ~15% of batch-1 decode). Setting the variable at start-up makes the answer free.
pub fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Stack of the pool's threads: the main thread's 8 MiB, not rayon's default 2 MiB, since the
/// whole command runs on one of them ([`in_thread_pool`]) and candle's backward pass walks the
/// graph recursively.
const WORKER_STACK: usize = 8 << 20;

/// Runs `f` on a worker of a CPU thread pool sized by `RAYON_NUM_THREADS` (see
/// [`pin_thread_count`]). From any other thread every parallel region is handed to the pool
/// while the caller sleeps until it ends — a futex round trip per region, hundreds per decoding
/// step; from a worker, the caller takes part in the region itself.
pub fn in_thread_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new()
        .stack_size(WORKER_STACK)
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Memory free for a run on `device` in bytes: the kernel's `MemAvailable` on the CPU, the
/// driver's free memory on a GPU; `None` when it cannot be read.
pub fn available_memory(device: &Device) -> Option<u64> {
    match device {
        Device::Cpu => {
            let host = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemAvailable:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
                    .map(|kb| kb * 1024)
            });
            // A container's limit (cgroup v2 `memory.max`), which MemAvailable does not show.
            let read = |f: &str| {
                std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
            };
            let cgroup = read("memory.max")
                .zip(read("memory.current"))
                .map(|(max, used)| max.saturating_sub(used));
            match (host, cgroup) {
                (Some(h), Some(c)) => Some(h.min(c)),
                (h, c) => h.or(c),
            }
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => d
            .cuda_stream()
            .context()
            .mem_get_info()
            .ok()
            .map(|(free, _)| free as u64),
        _ => None,
    }
}

/// Parses a `--dtype` value: `f32`, `bf16` or `f16`.
pub fn dtype(spec: &str) -> anyhow::Result<candle_core::DType> {
    match spec {
        "f32" => Ok(candle_core::DType::F32),
        "bf16" => Ok(candle_core::DType::BF16),
        "f16" => Ok(candle_core::DType::F16),
        s => anyhow::bail!("--dtype {s:?}: expected f32, bf16 or f16"),
    }
}

/// The compute dtype of training for a `dtype` setting, on the CPU (`cpu`) or a GPU: `auto` is
/// f32 on the CPU (candle's CPU bf16 is slower than f32, stack-notes) and bf16 on a GPU.
pub fn train_dtype(spec: &str, cpu: bool) -> anyhow::Result<candle_core::DType> {
    match spec {
        "auto" if cpu => Ok(candle_core::DType::F32),
        "auto" => Ok(candle_core::DType::BF16),
        s => dtype(s).map_err(|_| {
            anyhow::anyhow!("dtype = {s:?}: expected \"auto\", \"f32\", \"bf16\" or \"f16\"")
        }),
    }
}

/// A `--device` value, read without opening a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The first CUDA GPU when built with CUDA and one is present, else the CPU.
    Auto,
    Cpu,
    /// CUDA GPU `N` (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses `auto`, `cpu`, `cuda` or `cuda:N`; errors on anything else, naming it.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        match spec {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => anyhow::bail!("--device {s:?}: expected auto, cpu, cuda or cuda:N"),
            },
        }
    }
}

/// Opens the device a `--device` value names ([`DeviceSpec`]).
pub fn device(spec: &str) -> anyhow::Result<Device> {
    Ok(match DeviceSpec::parse(spec)? {
        DeviceSpec::Auto => Device::cuda_if_available(0)?,
        DeviceSpec::Cpu => Device::Cpu,
        DeviceSpec::Cuda(n) => Device::new_cuda(n)?,
    })
}
