//! Random intensity augmentation of a planar `[channels, height, width]`
//! `f32` image, for images scaled to about `[0, 1]`.
//!
//! Four transforms, applied in this order, each with its own probability and
//! parameter drawn uniformly from `[low, high]` (one draw per image, shared by
//! all channels; statistics such as mean, min and max are per channel):
//! 1. brightness: `x + b`;
//! 2. contrast: `m + c (x - m)`, `m` the channel mean (the mean is kept);
//! 3. gamma: `lo + (hi - lo) * ((x - lo) / (hi - lo))^g`, `lo`, `hi` the
//!    channel min and max: the channel is normalised to `[0, 1]`, raised to
//!    the power `g` and mapped back, so its range is kept and negative values
//!    never meet a fractional power. A constant channel is left unchanged;
//! 4. Gaussian noise: `x + s * z`, `z ~ N(0, 1)` independent per pixel
//!    (Box-Muller), the noise level `s` itself drawn from `[low, high]`.
//!
//! Random stream: for each transform in order, one `random_bool(p)`; if it
//! succeeds, one `f64` for the parameter (then, for noise, the normal draws).
//! The result is therefore a deterministic function of the rng state.

use rand::{Rng, RngExt};

use super::error::{Result, expect_len, invalid};
use super::gaussian::standard_normal_pair;

/// One randomly applied transform: applied with `probability`, its
/// parameter uniform in `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Jitter {
    /// Probability in `[0, 1]` of applying the transform.
    pub probability: f64,
    /// Lower end of the parameter range.
    pub low: f32,
    /// Upper end of the parameter range (`>= low`).
    pub high: f32,
}

impl Jitter {
    /// Applied with probability `probability`, parameter uniform in `[low, high]`.
    pub const fn new(probability: f64, low: f32, high: f32) -> Self {
        Jitter {
            probability,
            low,
            high,
        }
    }

    /// Never applied.
    pub const fn off(low: f32, high: f32) -> Self {
        Jitter::new(0.0, low, high)
    }

    fn validate(&self, name: &'static str, min_low: f32) -> Result<()> {
        let p = self.probability;
        if !(0.0..=1.0).contains(&p) {
            return Err(invalid(name, format!("probability {p} outside [0, 1]")));
        }
        let (low, high) = (self.low, self.high);
        if !(low.is_finite() && high.is_finite() && low <= high && low >= min_low) {
            return Err(invalid(name, format!("range [{low}, {high}] invalid")));
        }
        Ok(())
    }

    /// Draws whether to apply and, if so, the parameter.
    fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<f32> {
        if !rng.random_bool(self.probability) {
            return None;
        }
        let u = rng.random::<f64>();
        let (low, high) = (f64::from(self.low), f64::from(self.high));
        Some((low + (high - low) * u) as f32)
    }
}

/// Ranges and probabilities of the four intensity transforms.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IntensityConfig {
    /// Additive offset `b`. Default: p = 0.5, `[-0.1, 0.1]`.
    pub brightness: Jitter,
    /// Contrast factor `c` (must be `>= 0`). Default: p = 0.5, `[0.75, 1.25]`.
    pub contrast: Jitter,
    /// Gamma exponent `g` (must be `> 0`). Default: p = 0.5, `[0.7, 1.5]`.
    pub gamma: Jitter,
    /// Noise standard deviation `s` (must be `>= 0`). Default: p = 0.5, `[0, 0.05]`.
    pub noise: Jitter,
}

impl Default for IntensityConfig {
    fn default() -> Self {
        IntensityConfig {
            brightness: Jitter::new(0.5, -0.1, 0.1),
            contrast: Jitter::new(0.5, 0.75, 1.25),
            gamma: Jitter::new(0.5, 0.7, 1.5),
            noise: Jitter::new(0.5, 0.0, 0.05),
        }
    }
}

impl IntensityConfig {
    /// The default ranges with every probability set to 0 (the identity).
    pub fn disabled() -> Self {
        let d = IntensityConfig::default();
        let off = |j: Jitter| Jitter::off(j.low, j.high);
        IntensityConfig {
            brightness: off(d.brightness),
            contrast: off(d.contrast),
            gamma: off(d.gamma),
            noise: off(d.noise),
        }
    }

    fn validate(&self) -> Result<()> {
        self.brightness.validate("brightness", f32::MIN)?;
        self.contrast.validate("contrast", 0.0)?;
        self.gamma.validate("gamma", f32::MIN_POSITIVE)?;
        self.noise.validate("noise", 0.0)
    }
}

/// The parameters that were drawn and applied (`None`: not applied).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AppliedIntensity {
    /// Additive offset.
    pub brightness: Option<f32>,
    /// Contrast factor.
    pub contrast: Option<f32>,
    /// Gamma exponent.
    pub gamma: Option<f32>,
    /// Noise standard deviation.
    pub noise: Option<f32>,
}

/// Augments `image` (planar `[channels, height, width]`) in place as described
/// in the module docs and returns the drawn parameters.
///
/// Errors: wrong buffer length, invalid ranges or probabilities (checked
/// before anything is drawn or changed).
pub fn augment_intensity<R: Rng + ?Sized>(
    image: &mut [f32],
    channels: usize,
    height: usize,
    width: usize,
    config: &IntensityConfig,
    rng: &mut R,
) -> Result<AppliedIntensity> {
    expect_len("image", image.len(), &[channels, height, width])?;
    config.validate()?;
    let plane = image.len() / channels.max(1);
    let applied = AppliedIntensity {
        brightness: config.brightness.draw(rng),
        contrast: config.contrast.draw(rng),
        gamma: config.gamma.draw(rng),
        noise: config.noise.draw(rng),
    };
    if plane == 0 {
        return Ok(applied);
    }
    for channel in image.chunks_exact_mut(plane) {
        if let Some(b) = applied.brightness {
            channel.iter_mut().for_each(|x| *x += b);
        }
        if let Some(c) = applied.contrast {
            apply_contrast(channel, c);
        }
        if let Some(g) = applied.gamma {
            apply_gamma(channel, g);
        }
    }
    if let Some(s) = applied.noise {
        add_noise(image, s, rng);
    }
    Ok(applied)
}

/// `x <- m + c (x - m)`, `m` the mean of `channel` (computed in `f64`).
fn apply_contrast(channel: &mut [f32], c: f32) {
    let mean = channel.iter().map(|&x| f64::from(x)).sum::<f64>() / channel.len() as f64;
    let c = f64::from(c);
    for x in channel.iter_mut() {
        *x = (mean + c * (f64::from(*x) - mean)) as f32;
    }
}

/// `x <- lo + (hi - lo) ((x - lo) / (hi - lo))^g` over the channel's range.
fn apply_gamma(channel: &mut [f32], g: f32) {
    let (lo, hi) = channel
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    if hi <= lo {
        return;
    }
    let (lo, range, g) = (f64::from(lo), f64::from(hi) - f64::from(lo), f64::from(g));
    for x in channel.iter_mut() {
        let t = ((f64::from(*x) - lo) / range).clamp(0.0, 1.0);
        *x = (lo + range * t.powf(g)) as f32;
    }
}

/// `x <- x + s z`, `z` standard normal per pixel, drawn in buffer order.
fn add_noise<R: Rng + ?Sized>(image: &mut [f32], s: f32, rng: &mut R) {
    let s = f64::from(s);
    for pair in image.chunks_mut(2) {
        let (a, b) = standard_normal_pair(rng);
        pair[0] = (f64::from(pair[0]) + s * a) as f32;
        if let Some(second) = pair.get_mut(1) {
            *second = (f64::from(*second) + s * b) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i % 17) as f32 / 16.0).collect()
    }

    /// Only `which` applied (probability 1), with the fixed parameter `v`.
    fn only(which: usize, v: f32) -> IntensityConfig {
        let mut cfg = IntensityConfig::disabled();
        let fixed = Jitter::new(1.0, v, v);
        match which {
            0 => cfg.brightness = fixed,
            1 => cfg.contrast = fixed,
            2 => cfg.gamma = fixed,
            _ => cfg.noise = fixed,
        }
        cfg
    }

    #[test]
    fn all_probabilities_zero_is_the_identity() {
        let original = ramp(2 * 9 * 11);
        let mut image = original.clone();
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..20 {
            let cfg = IntensityConfig::disabled();
            let applied = augment_intensity(&mut image, 2, 9, 11, &cfg, &mut rng).unwrap();
            assert_eq!(applied, AppliedIntensity::default());
        }
        assert_eq!(image, original);
    }

    #[test]
    fn same_seed_same_output() {
        let cfg = IntensityConfig {
            noise: Jitter::new(1.0, 0.01, 0.05),
            ..IntensityConfig::default()
        };
        let run = |seed| {
            let mut image = ramp(3 * 8 * 8);
            let mut rng = StdRng::seed_from_u64(seed);
            augment_intensity(&mut image, 3, 8, 8, &cfg, &mut rng).unwrap();
            image
        };
        assert_eq!(run(12), run(12));
        assert_ne!(run(12), run(13));
    }

    #[test]
    fn brightness_adds_and_contrast_scales_around_the_mean() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut image = vec![0.0, 0.5, 1.0, 0.5];
        augment_intensity(&mut image, 1, 2, 2, &only(0, 0.25), &mut rng).unwrap();
        assert_eq!(image, vec![0.25, 0.75, 1.25, 0.75]);
        // Two channels with means 0.5 and 2: each scaled around its own mean.
        let mut image = vec![0.0, 1.0, 1.0, 3.0];
        augment_intensity(&mut image, 2, 1, 2, &only(1, 2.0), &mut rng).unwrap();
        assert_eq!(image, vec![-0.5, 1.5, 0.0, 4.0]);
    }

    #[test]
    fn gamma_works_on_the_normalised_range() {
        let mut rng = StdRng::seed_from_u64(0);
        // Range [1, 3]: 2 -> t = 0.5 -> 0.25 -> 1 + 2 * 0.25 = 1.5.
        let mut image = vec![1.0, 2.0, 3.0];
        augment_intensity(&mut image, 1, 1, 3, &only(2, 2.0), &mut rng).unwrap();
        assert_eq!(image, vec![1.0, 1.5, 3.0]);
        let mut constant = vec![0.3; 4];
        augment_intensity(&mut constant, 1, 2, 2, &only(2, 0.5), &mut rng).unwrap();
        assert_eq!(constant, vec![0.3; 4]);
    }

    #[test]
    fn noise_has_the_drawn_standard_deviation() {
        let mut rng = StdRng::seed_from_u64(8);
        let n = 100_000;
        let mut image = vec![0.5f32; n];
        let applied = augment_intensity(&mut image, 1, 1, n, &only(3, 0.05), &mut rng).unwrap();
        assert_eq!(applied.noise, Some(0.05));
        let mean = image.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        let var = image
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 0.5).abs() < 0.001, "{mean}");
        assert!((var.sqrt() - 0.05).abs() < 0.001, "{}", var.sqrt());
    }

    #[test]
    fn parameters_stay_in_their_ranges() {
        let cfg = IntensityConfig {
            brightness: Jitter::new(1.0, -0.1, 0.1),
            contrast: Jitter::new(1.0, 0.75, 1.25),
            gamma: Jitter::new(1.0, 0.7, 1.5),
            noise: Jitter::new(1.0, 0.0, 0.05),
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen_gamma = Vec::new();
        for _ in 0..200 {
            let mut image = ramp(16);
            let a = augment_intensity(&mut image, 1, 4, 4, &cfg, &mut rng).unwrap();
            let (b, c, g, s) = (
                a.brightness.unwrap(),
                a.contrast.unwrap(),
                a.gamma.unwrap(),
                a.noise.unwrap(),
            );
            assert!((-0.1..=0.1).contains(&b) && (0.75..=1.25).contains(&c));
            assert!((0.7..=1.5).contains(&g) && (0.0..=0.05).contains(&s));
            seen_gamma.push(g);
        }
        assert!(seen_gamma.iter().any(|&g| g < 0.8) && seen_gamma.iter().any(|&g| g > 1.4));
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut image = vec![0.0; 12];
        let cfg = IntensityConfig::default();
        assert!(augment_intensity(&mut image, 2, 2, 2, &cfg, &mut rng).is_err());
        let bad = IntensityConfig {
            gamma: Jitter::new(0.5, 0.0, 1.0),
            ..cfg
        };
        assert!(augment_intensity(&mut image, 1, 3, 4, &bad, &mut rng).is_err());
        let bad = IntensityConfig {
            noise: Jitter::new(1.5, 0.0, 1.0),
            ..cfg
        };
        assert!(augment_intensity(&mut image, 1, 3, 4, &bad, &mut rng).is_err());
        let bad = IntensityConfig {
            contrast: Jitter::new(0.5, 1.2, 0.8),
            ..cfg
        };
        assert!(augment_intensity(&mut image, 1, 3, 4, &bad, &mut rng).is_err());
        assert_eq!(image, vec![0.0; 12]);
    }
}
