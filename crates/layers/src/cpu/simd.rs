//! The vector instructions the element-wise loops of the CPU kernels run
//! with, chosen at run time.
//!
//! The loops (batch norm's passes, the depthwise convolution) are plain
//! Rust written so that they vectorise. A build for generic x86-64 would
//! give them 4-wide SSE; [`Level::run`] compiles a loop once more for
//! AVX2 with FMA and once for AVX-512, and runs the widest one the CPU has.
//! Every level computes the same values: the loops fix their order of
//! summation themselves and Rust never contracts a multiply and an add, so
//! only the width of the instructions changes. On other architectures the
//! portable build is the only one (NEON is part of aarch64's baseline).

/// An instruction set a loop can be compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// The target's baseline (SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// AVX2 and FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F (x86-64-v4).
    Avx512,
}

impl Level {
    /// The widest level this CPU runs.
    pub(crate) fn detect() -> Self {
        [Level::Avx512, Level::Avx2]
            .into_iter()
            .find(|level| level.supported())
            .unwrap_or(Level::Portable)
    }

    /// Every level this CPU runs, the portable one first (the tests compare
    /// them).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Self> {
        [Level::Portable, Level::Avx2, Level::Avx512]
            .into_iter()
            .filter(|level| level.supported())
            .collect()
    }

    fn supported(self) -> bool {
        match self {
            Level::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Runs `f` compiled for this level, or for the portable one where the
    /// CPU lacks it. Code is compiled for the level only where it is inlined
    /// into the level's function: mark `f` (a closure too) and the
    /// functions it calls `#[inline(always)]`.
    #[inline(always)]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        #[cfg(target_arch = "x86_64")]
        match self {
            // SAFETY: `avx512` and `avx2` need only the CPU features they
            // enable, and `supported` has just detected them on this CPU.
            Level::Avx512 if self.supported() => return unsafe { avx512(f) },
            Level::Avx2 if self.supported() => return unsafe { avx2(f) },
            _ => {}
        }
        f()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portable_level_is_always_available_and_first() {
        let levels = Level::available();
        assert_eq!(levels[0], Level::Portable);
        assert_eq!(Level::detect(), *levels.last().unwrap());
        // A level the CPU lacks falls back to the portable build.
        for level in [Level::Portable, Level::Avx2, Level::Avx512] {
            assert_eq!(level.run(|| 2 + 2), 4);
        }
    }
}
