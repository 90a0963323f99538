//! Which Burn backend a run uses, chosen at run time.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceKind, Tensor};

use crate::error::CliError;

/// A Burn backend, picked at run time: Burn 0.22 dispatches on the device, so
/// one binary serves all of them. Serialised by its command-line name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (`burn-flex`): the fast CPU choice.
    Flex,
    /// The `ndarray` CPU backend (deprecated in Burn 0.22, kept because users rely on it).
    Ndarray,
    /// WebGPU through `wgpu`: Vulkan, Metal or DirectX on a real GPU, or a
    /// software Vulkan driver such as Mesa's lavapipe where there is none.
    Wgpu,
}

impl BackendKind {
    /// Every backend, in the order tests run them.
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Wgpu];

    /// The backend's default device (without autodiff; call `.autodiff()` on
    /// it to train). For `Wgpu` this is the adapter `wgpu` prefers (a discrete
    /// GPU first).
    pub fn device(self) -> Device {
        self.device_at(None)
    }

    /// The backend's device; for `Wgpu` with `Some(index)`, discrete GPU
    /// number `index` as wgpu lists them.
    pub fn device_at(self, gpu: Option<usize>) -> Device {
        match (self, gpu) {
            (BackendKind::Flex, _) => Device::flex(),
            #[allow(deprecated)]
            (BackendKind::Ndarray, _) => Device::ndarray(),
            (BackendKind::Wgpu, None) => Device::wgpu(DeviceKind::DefaultDevice),
            (BackendKind::Wgpu, Some(index)) => Device::wgpu(DeviceKind::DiscreteGpu(index)),
        }
    }

    /// The backend's device ([`BackendKind::device_at`]), checked to work:
    /// a small tensor makes the round trip to it. A GPU that is not there
    /// (`--device 99`, or no adapter at all) is an error naming it, where
    /// the first tensor on it would end the program.
    pub fn open(self, gpu: Option<usize>) -> Result<Device, CliError> {
        let device = self.device_at(gpu);
        if self == BackendKind::Wgpu {
            probe(&device).map_err(|reason| {
                let option = gpu.map(|i| format!(" --device {i}")).unwrap_or_default();
                // CubeCL's own words, where they say more than an unwrap.
                let detail = if reason.starts_with("called `") {
                    String::new()
                } else {
                    format!(": {reason}")
                };
                CliError::Device(format!(
                    "--backend wgpu{option}: no usable GPU adapter (no such GPU, or no Vulkan, \
                     Metal or DirectX 12 driver{detail})"
                ))
            })?;
        }
        Ok(device)
    }

    /// The name used on command lines: `flex`, `ndarray` or `wgpu`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Computes a small sum on `device` (an element-wise and a reduction
/// kernel) and reads it back. CubeCL panics where no adapter matches; that
/// panic is caught here ([`crate::guard`]), and its message returned. An
/// adapter that answers but cannot run the kernels (OpenGL through a
/// software driver) fails here too, rather than in the middle of a run.
fn probe(device: &Device) -> Result<(), String> {
    let sum = crate::guard::catch(|| {
        (Tensor::<1>::ones([256], device) * 2.0)
            .sum()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|err| format!("{err:?}"))
    })??;
    if sum != [512.0] {
        return Err(format!("a test sum came back as {sum:?}, not [512.0]"));
    }
    Ok(())
}

/// A backend name that is not one of `flex`, `ndarray`, `wgpu`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend '{0}': expected flex, ndarray or wgpu")]
pub struct UnknownBackend(pub String);

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|backend| backend.name() == name)
            .ok_or_else(|| UnknownBackend(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for backend in BackendKind::ALL {
            assert_eq!(backend.name().parse::<BackendKind>(), Ok(backend));
        }
        assert_eq!(
            "cuda".parse::<BackendKind>().unwrap_err().to_string(),
            "unknown backend 'cuda': expected flex, ndarray or wgpu"
        );
    }
}
