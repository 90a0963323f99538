//! Which Burn backend a run uses, chosen at run time.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceKind, DeviceType, Tensor};

use crate::config::devices_text;
use crate::error::RunError;

/// A Burn backend, picked at run time: Burn 0.22 dispatches on the device, so
/// one binary serves all of them. Serialised by its command-line name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (`burn-flex`): the fast CPU choice.
    Flex,
    /// The `ndarray` CPU backend (deprecated in Burn 0.22, kept because users rely on it).
    Ndarray,
    /// A GPU through `wgpu`, on the graphics API it prefers: Vulkan, Metal or
    /// DirectX, or a software Vulkan driver such as Mesa's lavapipe where
    /// there is no GPU. On Vulkan, kernels are compiled to SPIR-V (as for
    /// [`BackendKind::Vulkan`]) where the driver offers what that compiler
    /// needs, else to WGSL.
    Wgpu,
    /// A GPU through `wgpu`, pinned to Vulkan: no device without a Vulkan
    /// driver. Kernels are compiled to SPIR-V, the compiler that can use
    /// cooperative-matrix instructions (tensor cores), where the driver
    /// offers what it needs, else to WGSL.
    Vulkan,
}

impl BackendKind {
    /// Every backend, in the order tests run them.
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Flex,
        BackendKind::Ndarray,
        BackendKind::Wgpu,
        BackendKind::Vulkan,
    ];

    /// The GPU backends. On a Vulkan adapter both compile kernels to SPIR-V
    /// and share CubeCL's on-disk caches, so a suite run on one then the
    /// other compiles its kernels once.
    pub const GPUS: [BackendKind; 2] = [BackendKind::Wgpu, BackendKind::Vulkan];

    /// Whether the backend runs on a GPU (or a software GPU driver).
    pub fn is_gpu(self) -> bool {
        matches!(self, BackendKind::Wgpu | BackendKind::Vulkan)
    }

    /// The backend's default device (without autodiff; call `.autodiff()` on
    /// it to train). On a GPU backend this is the adapter `wgpu` prefers (a
    /// discrete GPU first).
    pub fn device(self) -> Device {
        self.device_at(None)
    }

    /// The backend's device; on a GPU backend with `Some(index)`, discrete
    /// GPU number `index` as wgpu lists them.
    pub fn device_at(self, gpu: Option<usize>) -> Device {
        match (self, gpu) {
            (BackendKind::Flex, _) => Device::flex(),
            #[allow(deprecated)]
            (BackendKind::Ndarray, _) => Device::ndarray(),
            (BackendKind::Wgpu | BackendKind::Vulkan, None) => self.gpu(DeviceKind::DefaultDevice),
            (BackendKind::Wgpu | BackendKind::Vulkan, Some(index)) => {
                self.gpu(DeviceKind::DiscreteGpu(index))
            }
        }
    }

    /// The GPU backend's device of `kind` (`Wgpu` for a CPU backend, whose
    /// callers never ask).
    fn gpu(self, kind: DeviceKind) -> Device {
        match self {
            BackendKind::Vulkan => Device::vulkan(kind),
            BackendKind::Wgpu | BackendKind::Flex | BackendKind::Ndarray => Device::wgpu(kind),
        }
    }

    /// The backend's device ([`BackendKind::device_at`]), checked to work:
    /// a small tensor makes the round trip to it. A GPU that is not there
    /// (`--device 99`, or no adapter at all) is an error naming it, where
    /// the first tensor on it would end the program.
    pub fn open(self, gpu: Option<usize>) -> Result<Device, RunError> {
        let device = self.device_at(gpu);
        if self.is_gpu() {
            probe(&device).map_err(|reason| {
                let option = gpu.map(|i| format!(" --device {i}")).unwrap_or_default();
                // CubeCL's own words, where they say more than an unwrap.
                let detail = if reason.starts_with("called `") {
                    String::new()
                } else {
                    format!(": {reason}")
                };
                RunError::Device(format!(
                    "--backend {self}{option}: no usable GPU adapter (no such GPU, or no {} \
                     driver{detail})",
                    self.drivers()
                ))
            })?;
        }
        Ok(device)
    }

    /// The devices of a data-parallel run (`Some` list, `--devices`), each
    /// checked to work as by [`BackendKind::open`]; or, for `None`, the
    /// one device of `--device` (`gpu`). The first is the main device: it
    /// holds the model and the optimizer, and runs validation.
    ///
    /// - `Flex`: as many replicas of the one CPU device (for checking: they
    ///   share its cores).
    /// - `Wgpu`, `Vulkan`: discrete GPU `i` for each `i`, as `--device i`;
    ///   where the only adapter is a software one (lavapipe), 0 is the
    ///   default device and 1 a second logical device on the same adapter.
    /// - `Ndarray`: refused.
    pub fn open_all(
        self,
        devices: Option<&[usize]>,
        gpu: Option<usize>,
    ) -> Result<Vec<Device>, RunError> {
        let Some(list) = devices else {
            return Ok(vec![self.open(gpu)?]);
        };
        let shown = devices_text(list);
        match self {
            BackendKind::Flex => Ok(vec![Device::flex(); list.len()]),
            BackendKind::Ndarray => Err(RunError::option(
                "--devices",
                shown,
                "used with --backend wgpu, vulkan or flex (ndarray trains on one device)",
            )),
            BackendKind::Wgpu | BackendKind::Vulkan => {
                let devices = self.gpu_devices(list, &shown)?;
                for (device, index) in devices.iter().zip(list) {
                    probe(device).map_err(|reason| {
                        RunError::Device(format!(
                            "--backend {self} --devices {shown}: device {index} does not work \
                             (no such GPU, or no {} driver: {reason})",
                            self.drivers()
                        ))
                    })?;
                }
                Ok(devices)
            }
        }
    }

    /// The drivers a GPU backend can run on, for messages.
    fn drivers(self) -> &'static str {
        match self {
            BackendKind::Vulkan => "Vulkan",
            BackendKind::Wgpu | BackendKind::Flex | BackendKind::Ndarray => {
                "Vulkan, Metal or DirectX 12"
            }
        }
    }

    /// The GPU devices of `--devices` (shown as `shown`): discrete GPUs by
    /// index, or, where every adapter is a software one, the two logical
    /// devices it can serve.
    fn gpu_devices(self, list: &[usize], shown: &str) -> Result<Vec<Device>, RunError> {
        if !self.software_only() {
            return Ok(list
                .iter()
                .map(|&index| self.gpu(DeviceKind::DiscreteGpu(index)))
                .collect());
        }
        list.iter()
            .map(|&index| match index {
                0 => Ok(self.gpu(DeviceKind::DefaultDevice)),
                1 => Ok(self.gpu(DeviceKind::Cpu)),
                _ => Err(RunError::option(
                    "--devices",
                    shown,
                    "0 and 1 at most: this machine's only GPU adapter is a software one \
                     (such as lavapipe), which serves two logical devices, 0 and 1",
                )),
            })
            .collect()
    }

    /// Whether the GPU backend finds adapters on its graphics APIs (any for
    /// `Wgpu`, Vulkan for `Vulkan`) and all of them are software (CPU) ones.
    /// Listing adapters opens no device.
    fn software_only(self) -> bool {
        let api = match self {
            BackendKind::Vulkan => DeviceType::Vulkan,
            BackendKind::Wgpu | BackendKind::Flex | BackendKind::Ndarray => DeviceType::Wgpu,
        };
        let adapters = crate::guard::catch(|| Device::enumerate(api).to_vec());
        let cpu = self.gpu(DeviceKind::Cpu);
        adapters.is_ok_and(|list| !list.is_empty() && list.iter().all(|d| *d == cpu))
    }

    /// The name used on command lines: `flex`, `ndarray`, `wgpu` or `vulkan`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Vulkan => "vulkan",
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
/// adapter that answers but cannot run the kernels fails here too, rather
/// than in the middle of a run.
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

/// A backend name that is not one of `flex`, `ndarray`, `wgpu`, `vulkan`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend '{0}': expected flex, ndarray, wgpu or vulkan")]
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
            "unknown backend 'cuda': expected flex, ndarray, wgpu or vulkan"
        );
    }

    #[test]
    fn device_lists_open_replicas_on_flex_and_nothing_on_ndarray() {
        let flex = BackendKind::Flex.open_all(Some(&[0, 1]), None).unwrap();
        assert_eq!(flex, [Device::flex(), Device::flex()]);
        assert_eq!(BackendKind::Flex.open_all(None, None).unwrap().len(), 1);
        let refused = BackendKind::Ndarray.open_all(Some(&[0, 1]), None);
        assert_eq!(
            refused.unwrap_err().to_string(),
            "--devices 0,1: must be used with --backend wgpu, vulkan or flex (ndarray trains on one device)"
        );
    }

    /// On a machine whose only adapter is a software one (lavapipe, as in
    /// CI): two distinct working devices per GPU backend, the first the
    /// default device, and no third. Elsewhere `--devices` names discrete
    /// GPUs, as `--device`.
    #[test]
    fn a_software_adapter_serves_two_devices_per_gpu_backend() {
        type BurnDevice = fn(DeviceKind) -> Device;
        let backends: [(BackendKind, BurnDevice); 2] = [
            (BackendKind::Wgpu, Device::wgpu),
            (BackendKind::Vulkan, Device::vulkan),
        ];
        for (backend, burn_device) in backends {
            if !backend.software_only() {
                let gpus = backend.gpu_devices(&[0, 1], "0,1").unwrap();
                assert_eq!(
                    gpus,
                    [0, 1].map(|i| burn_device(DeviceKind::DiscreteGpu(i)))
                );
                continue;
            }
            let devices = backend.open_all(Some(&[0, 1]), None).unwrap();
            assert_ne!(devices[0], devices[1]);
            assert_eq!(devices[0], burn_device(DeviceKind::DefaultDevice));
            assert_eq!(devices[1], burn_device(DeviceKind::Cpu));
            let refused = backend.open_all(Some(&[0, 1, 2]), None);
            assert!(
                refused
                    .unwrap_err()
                    .to_string()
                    .starts_with("--devices 0,1,2: must be 0 and 1 at most"),
            );
        }
        assert_ne!(BackendKind::Wgpu.device(), BackendKind::Vulkan.device());
    }
}
