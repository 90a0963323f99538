//! How large a tensor a device holds at once. A GPU binds each tensor
//! whole, up to a limit of its own: 128 MiB on Mesa's lavapipe and WebGPU's
//! defaults, a few GiB on discrete GPUs. Burn 0.22.1 does not report the
//! limit, so sizes are tried on the device, once each: the half-precision
//! convolutions ([`crate::lowering`]) size their temporaries by it, and
//! programs can check a run's largest tensor before they start. The CPU
//! backends have no such limit (what bounds them is the machine's memory,
//! which a program checks for a whole run, not tensor by tensor).

use std::sync::Mutex;

use burn::tensor::{Device, Tensor};

/// What is known of each device: the largest size it held and the smallest
/// it refused.
static KNOWN: Mutex<Vec<(Device, usize, Option<usize>)>> = Mutex::new(Vec::new());

/// Whether `device` holds a tensor of `bytes` at once. On a GPU, the first
/// time a size is asked about (beyond what earlier answers settle), a
/// tensor of that size is written on the device and its last value read
/// back; the answer is kept. A CPU device (flex, ndarray) holds any size:
/// nothing is tried there.
pub fn device_holds(device: &Device, bytes: usize) -> bool {
    if crate::cpu::is_cpu(device) {
        return true;
    }
    let mut known = KNOWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let index = match known.iter().position(|(d, _, _)| d == device) {
        Some(index) => index,
        None => {
            known.push((device.clone(), 0, None));
            known.len() - 1
        }
    };
    let (_, largest, refused) = &mut known[index];
    if bytes <= *largest {
        return true;
    }
    if refused.is_some_and(|r| bytes >= r) {
        return false;
    }
    let holds = try_holding(device, bytes);
    if holds {
        *largest = bytes;
    } else {
        *refused = Some(bytes);
    }
    holds
}

/// Writes a tensor of `bytes` on `device` and reads its last value back;
/// whether that worked.
fn try_holding(device: &Device, bytes: usize) -> bool {
    let elements = bytes.div_ceil(4).max(1);
    let device = device.clone().inner();
    let read = std::panic::catch_unwind(|| {
        Tensor::<1>::zeros([elements], &device)
            .narrow(0, elements - 1, 1)
            .try_into_data()
            .is_ok()
    });
    // The pages of that tensor go back to the device.
    device.memory_cleanup();
    read.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A size no machine has: trying it would fail (or abort on allocation),
    /// so `true` shows that nothing was tried.
    #[test]
    fn a_cpu_device_holds_any_size_without_trying() {
        #[allow(deprecated)]
        let ndarray = Device::ndarray();
        for device in [Device::flex(), Device::flex().autodiff(), ndarray] {
            assert!(device_holds(&device, usize::MAX / 2));
        }
    }
}
