//! The backends this project runs on, chosen at run time.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceKind};

/// A Burn backend, picked at run time: Burn 0.22 dispatches on the device, so
/// one binary serves all of them. Serialised by its command-line name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (`burn-flex`): the fast CPU choice.
    Flex,
    /// The `ndarray` CPU backend (deprecated in Burn 0.22, kept because users rely on it).
    Ndarray,
    /// WebGPU through `wgpu`: Vulkan, Metal or DirectX on a real GPU, or a
    /// software Vulkan driver such as Mesa's lavapipe where there is none.
    Wgpu,
}

impl Backend {
    /// Every backend, in the order tests run them.
    pub const ALL: [Backend; 3] = [Backend::Flex, Backend::Ndarray, Backend::Wgpu];

    /// The backend's device (without autodiff; call `.autodiff()` on it to train).
    /// For `Wgpu` this is the adapter `wgpu` prefers (a discrete GPU first).
    pub fn device(self) -> Device {
        match self {
            Backend::Flex => Device::flex(),
            #[allow(deprecated)]
            Backend::Ndarray => Device::ndarray(),
            Backend::Wgpu => Device::wgpu(DeviceKind::DefaultDevice),
        }
    }

    /// The name used on command lines: `flex`, `ndarray` or `wgpu`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is not one of `flex`, `ndarray`, `wgpu`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend '{0}': expected flex, ndarray or wgpu")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
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
        for backend in Backend::ALL {
            assert_eq!(backend.name().parse::<Backend>(), Ok(backend));
        }
        assert_eq!(
            "cuda".parse::<Backend>().unwrap_err().to_string(),
            "unknown backend 'cuda': expected flex, ndarray or wgpu"
        );
    }
}
