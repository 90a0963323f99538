//! Normal random numbers by the Box-Muller transform (`rand` 0.10 has no
//! normal distribution without `rand_distr`).
//!
//! From `u1` uniform in `(0, 1]` and `u2` uniform in `[0, 1)`:
//! `r = sqrt(-2 ln u1)`, `z0 = r cos(2 pi u2)`, `z1 = r sin(2 pi u2)` are two
//! independent standard normal variates.

use rand::{Rng, RngExt};

/// Two independent standard normal samples (one Box-Muller step, two
/// `f64` draws from `rng`).
pub fn standard_normal_pair<R: Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    // `random::<f64>()` is uniform in [0, 1); `1 - u` is in (0, 1], so ln is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    let r = (-2.0 * u1.ln()).sqrt();
    let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
    (r * cos, r * sin)
}

/// Fills `out` with independent `N(mean, std^2)` samples, two per
/// Box-Muller step (the second of the last pair is dropped if `out.len()` is
/// odd).
pub fn fill_normal<R: Rng + ?Sized>(rng: &mut R, mean: f64, std: f64, out: &mut [f64]) {
    for pair in out.chunks_mut(2) {
        let (a, b) = standard_normal_pair(rng);
        pair[0] = mean + std * a;
        if let Some(second) = pair.get_mut(1) {
            *second = mean + std * b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn moments_match_a_standard_normal() {
        let mut rng = StdRng::seed_from_u64(7);
        let n = 200_000;
        let mut v = vec![0.0; n];
        fill_normal(&mut rng, 0.0, 1.0, &mut v);
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let within_one = v.iter().filter(|x| x.abs() < 1.0).count() as f64 / n as f64;
        // Standard errors: mean 0.0022, variance 0.0032, P(|z|<1) 0.001.
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.015, "{var}");
        assert!((within_one - 0.6827).abs() < 0.005, "{within_one}");
    }

    #[test]
    fn scaled_and_deterministic() {
        let mut a = vec![0.0; 5];
        let mut b = vec![0.0; 5];
        fill_normal(&mut StdRng::seed_from_u64(1), 3.0, 0.0, &mut a);
        assert_eq!(a, vec![3.0; 5]);
        fill_normal(&mut StdRng::seed_from_u64(2), 0.0, 1.0, &mut a);
        fill_normal(&mut StdRng::seed_from_u64(2), 0.0, 1.0, &mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|x| x.is_finite()));
    }
}
