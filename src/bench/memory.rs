//! Memory of a training step on CPU, measured from the process's resident set: after a warm-up
//! step (gradients, optimizer-free), the high-water mark is reset (`/proc/self/clear_refs`), one
//! forward + backward runs, and the peak above the resting footprint is what the step needed:
//! saved activations plus temporaries. Large allocations are forced to `mmap` (`mallopt`), so
//! freed tensors leave the resident set at once and the readings are exact to the page.

use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::models::{Model, ModelArgs};
use crate::run::proc_status_bytes;
use crate::train::step::{forward_backward_checkpointed, forward_loss};

fn force_mmap_for_large_allocations() {
    // SAFETY: mallopt only changes glibc's allocation policy for later allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

/// Peak extra resident memory of one training step (forward + backward) at `batch`, in bytes,
/// with or without gradient checkpointing.
pub fn step_peak_bytes(name: &str, args: &ModelArgs, batch: i64, checkpointing: bool) -> Result<u64> {
    force_mmap_for_large_allocations();
    let model = Model::new(name, args, Device::Cpu)?;
    let x = Tensor::zeros([batch, args.in_channels, args.input_size, args.input_size], (Kind::Float, Device::Cpu));
    let y = Tensor::zeros([batch], (Kind::Int64, Device::Cpu));
    let step = || {
        if checkpointing {
            let _ = forward_backward_checkpointed(&model, &x, &y, None, 0.0, 1.0);
        } else {
            forward_loss(&model, &x, &y, None, 0.0).0.backward();
        }
    };
    step(); // warm-up: gradient buffers exist from here on
    let base = proc_status_bytes("VmRSS:");
    // Reset VmHWM to the current RSS; where the kernel refuses (some sandboxes) the peak would
    // include earlier ones, so say so instead of reporting it.
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| {
        crate::error::Error::Runtime(format!(
            "cannot measure step memory here: resetting the peak (/proc/self/clear_refs) failed: {e}"
        ))
    })?;
    step();
    Ok(proc_status_bytes("VmHWM:").saturating_sub(base))
}

/// Step memory at batch 128, extrapolated linearly from measurements at batch 8 and 16 (the
/// activations grow linearly with the batch; measuring at 128 takes seconds per model on CPU).
pub fn step_bytes_at_128(name: &str, args: &ModelArgs, checkpointing: bool) -> Result<u64> {
    let small = step_peak_bytes(name, args, 8, checkpointing)? as f64;
    let large = step_peak_bytes(name, args, 16, checkpointing)? as f64;
    let per_image = ((large - small) / 8.0).max(0.0);
    Ok((small + per_image * 120.0) as u64)
}
