//! Device, thread-count and precision detection.

use tch::{Device, Kind, Tensor};

use crate::config::TrainConfig;
use crate::config_err;
use crate::error::Result;

/// Numeric precision of the matmul-class ops (conv, linear). Master weights, BatchNorm statistics
/// and the loss always stay in fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Everything in fp32.
    Fp32,
    /// Conv and linear in bfloat16 (oneDNN/AMX on CPU, tensor cores on CUDA).
    Bf16,
    /// Conv and linear in float16 (CUDA only).
    Fp16,
}

/// A device as users write it: "cpu" or "cuda:N".
pub fn label(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

impl Precision {
    /// The tensor kind conv and linear layers compute in.
    pub fn compute_kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp16 => Kind::Half,
        }
    }

    /// The kind to autocast conv and linear layers to: None in fp32 (nothing to cast).
    pub fn autocast_kind(self) -> Option<Kind> {
        (self != Precision::Fp32).then(|| self.compute_kind())
    }

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }
}

/// Picks the device: `auto` is CUDA when one is visible, else CPU.
pub fn select_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        "cuda" => Err(config_err!("`train.device` = \"cuda\": no CUDA device is visible; use \"auto\" or \"cpu\"")),
        "auto" => Ok(Device::cuda_if_available()),
        other => Err(config_err!("`train.device` = {other:?}: expected one of {}", crate::config::DEVICES.join(", "))),
    }
}

/// Resolves `train.precision`. `auto` is bf16 on CUDA and on CPUs with native bf16 matmul
/// (AVX512-BF16 or AMX), where it is about 3x faster than fp32 for convs and keeps accuracy;
/// fp32 elsewhere (bf16 emulated on older CPUs is slower than fp32).
pub fn select_precision(name: &str, device: Device) -> Result<Precision> {
    match name {
        "fp32" => Ok(Precision::Fp32),
        "bf16" => {
            if !device.is_cuda() && !cpu_has_native_bf16() {
                note_emulated_bf16();
            }
            Ok(Precision::Bf16)
        }
        "fp16" if device.is_cuda() => Ok(Precision::Fp16),
        "fp16" => {
            Err(config_err!("`train.precision` = \"fp16\": fp16 needs a CUDA device; on CPU use \"bf16\" or \"auto\""))
        }
        "auto" if device.is_cuda() || cpu_has_native_bf16() => Ok(Precision::Bf16),
        "auto" => Ok(Precision::Fp32),
        other => {
            Err(config_err!("`train.precision` = {other:?}: expected one of {}", crate::config::PRECISIONS.join(", ")))
        }
    }
}

/// Says once per process that bf16 asked for on a CPU without native bf16 will be slow.
fn note_emulated_bf16() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::notice::note(
            "`train.precision` = \"bf16\" on a CPU without native bf16 (AVX512-BF16 or AMX): oneDNN \
             refuses bf16 convolutions there and LibTorch falls back to its reference kernels, many times \
             slower than fp32 (see docs/recipes.md, Mixed precision); \"auto\" picks fp32 on this CPU",
        )
    });
}

/// Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16).
pub fn cpu_has_native_bf16() -> bool {
    cpu_flags().iter().any(|f| f == "avx512_bf16" || f == "amx_bf16")
}

/// The CPU feature flags relevant to training speed (from /proc/cpuinfo; empty elsewhere).
pub fn cpu_flags() -> Vec<String> {
    const INTERESTING: &[&str] = &["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"];
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    flags.split_whitespace().filter(|f| INTERESTING.contains(f)).map(String::from).collect()
}

/// The CPU model name, for provenance.
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// Sets the intra-op thread count (0 = leave LibTorch's default: one per core).
pub fn set_threads(n: i64) {
    if n > 0 {
        tch::set_num_threads(n as i32);
    }
}

/// Device and precision for a training config.
pub fn resolve(train: &TrainConfig) -> Result<(Device, Precision)> {
    let device = select_device(train.device.as_str())?;
    let precision = select_precision(train.precision.as_str(), device)?;
    Ok((device, precision))
}

/// The same `(B, C, H, W)` tensor laid out channels-last (NHWC strides), which oneDNN and cuDNN
/// convolutions run fastest on; they keep that layout for their outputs. (tch does not expose
/// `torch.channels_last`; a permute-contiguous-permute yields exactly those strides.)
pub fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Keeps freed activation buffers inside the process instead of handing them back to the kernel.
///
/// LibTorch's CPU tensors come from glibc `malloc`. Once a process sets any malloc tunable,
/// glibc stops adapting its thresholds, and with the defaults every buffer over 128 KiB (a
/// batch of activations is megabytes) is a fresh `mmap` whose pages fault in again on every
/// step, then `munmap`ed when freed. Measured on SimpleCNN (batch 128, bf16, 1 thread): training
/// 1.3-1.5x and inference 2.2-2.5x faster with the thresholds below (see issue #5's note). The
/// cost: up to `TRIM` bytes of freed memory stay mapped to the process.
///
/// Skipped when the user tunes malloc through the environment (`MALLOC_*_` or `GLIBC_TUNABLES`).
pub fn tune_allocator() {
    const MMAP: i32 = 256 << 20; // allocations below 256 MiB reuse the heap
    const TRIM: i32 = 1 << 30; // keep up to 1 GiB of free heap before returning it
    let user_tuned = std::env::vars_os().any(|(k, _)| {
        let k = k.to_string_lossy();
        k == "GLIBC_TUNABLES" || (k.starts_with("MALLOC_") && k.ends_with('_'))
    });
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !user_tuned {
        // SAFETY: mallopt only sets allocator parameters; called before tensors are allocated.
        unsafe {
            // glibc before 2.35 caps the mmap threshold at 32 MiB (refusing more). Setting the
            // trim threshold alone would pin the mmap threshold at its 128 KiB default, worse
            // than glibc's adaptive default: only go on when a threshold was accepted.
            if libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP) == 1 || libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
            {
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM);
                // Threads other than the main one allocate from their own arenas, whose heaps
                // grow to 64 MiB at most: larger buffers (a data-parallel replica's activations)
                // would be fresh mmaps again. One arena serves every thread from the main heap.
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
        }
    }
    let _ = (user_tuned, MMAP, TRIM);
}
