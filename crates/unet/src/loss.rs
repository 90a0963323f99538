//! Losses for per-pixel classification.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy over all pixels, as PyTorch's
/// `F.cross_entropy(logits, target)` for `[N, C, H, W]` logits and `[N, H, W]`
/// class indices.
pub fn cross_entropy(logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
    let log_probs = log_softmax(logits, 1);
    let picked = log_probs.gather(1, target.unsqueeze_dim::<4>(1));
    picked.mean().neg()
}

/// Soft Dice loss over the foreground classes (class 0 is background):
/// `1 - mean_c (2 sum p_c t_c + 1) / (sum p_c + sum t_c + 1)`, with `p` the
/// softmax probabilities and `t` the one-hot target, sums over the batch and
/// pixels. With a single class it uses that class.
pub fn dice_loss(logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
    let [_, classes, _, _] = logits.dims();
    let probs = softmax(logits, 1);
    let one_hot = target.one_hot::<4>(classes).permute([0, 3, 1, 2]).float();
    let first = if classes > 1 { 1 } else { 0 };
    let [n, _, h, w] = probs.dims();
    let probs = probs.slice([0..n, first..classes, 0..h, 0..w]);
    let one_hot = one_hot.slice([0..n, first..classes, 0..h, 0..w]);
    let intersection = (probs.clone() * one_hot.clone())
        .sum_dim(0)
        .sum_dim(2)
        .sum_dim(3);
    let total = (probs + one_hot).sum_dim(0).sum_dim(2).sum_dim(3);
    let dice = (intersection * 2.0 + 1.0) / (total + 1.0);
    dice.mean().neg() + 1.0
}

/// Per-pixel weights `[N, H, W]`: the product of `pixel` weights (a weight
/// map) and the weight of each pixel's target class, either of them optional.
fn pixel_weights(
    target: &Tensor<3, Int>,
    pixel: Option<Tensor<3>>,
    class: Option<Tensor<1>>,
) -> Option<Tensor<3>> {
    let [n, h, w] = target.dims();
    let by_class = class.map(|class| {
        class
            .select(0, target.clone().reshape([n * h * w]))
            .reshape([n, h, w])
    });
    match (pixel, by_class) {
        (Some(p), Some(c)) => Some(p * c),
        (p, c) => p.or(c),
    }
}

/// Cross-entropy with per-pixel and per-class weights:
/// `sum_x w(x) (-log p_t(x)) / sum_x w(x)`, `w(x) = pixel(x) * class[t(x)]`.
/// With class weights only it is PyTorch's
/// `F.cross_entropy(logits, target, weight=class)`; with a weight map the
/// U-Net paper's weighted loss (eq. 1), normalised by the total weight; with
/// neither, [`cross_entropy`].
///
/// # Shapes
/// - `logits`: `[N, C, H, W]`; `target`: `[N, H, W]` class indices
/// - `pixel`: `[N, H, W]`; `class`: `[C]`
pub fn weighted_cross_entropy(
    logits: Tensor<4>,
    target: Tensor<3, Int>,
    pixel: Option<Tensor<3>>,
    class: Option<Tensor<1>>,
) -> Tensor<1> {
    focal_loss(logits, target, 0.0, pixel, class)
}

/// Focal loss (Lin et al., 2017) over softmax probabilities, weighted as
/// [`weighted_cross_entropy`]: `sum_x w(x) (1 - p_t)^gamma (-log p_t) / sum_x w(x)`.
/// `gamma = 0` is the weighted cross-entropy.
pub fn focal_loss(
    logits: Tensor<4>,
    target: Tensor<3, Int>,
    gamma: f32,
    pixel: Option<Tensor<3>>,
    class: Option<Tensor<1>>,
) -> Tensor<1> {
    let weights = pixel_weights(&target, pixel, class);
    let log_probs = log_softmax(logits, 1);
    let picked = log_probs
        .gather(1, target.unsqueeze_dim::<4>(1))
        .squeeze_dim::<3>(1);
    let mut terms = picked.clone().neg();
    if gamma != 0.0 {
        let modulation = (picked.exp().neg() + 1.0).clamp_min(0.0).powf_scalar(gamma);
        terms = terms * modulation;
    }
    match weights {
        Some(w) => (terms * w.clone()).sum() / w.sum(),
        None => terms.mean(),
    }
}

/// Tversky loss (Salehi et al., 2017) over the foreground classes:
/// `1 - mean_c (TP + 1) / (TP + alpha FP + beta FN + 1)`, with soft counts
/// `TP = sum p_c t_c`, `FP = sum p_c (1 - t_c)`, `FN = sum (1 - p_c) t_c`
/// over the batch and pixels. `beta > alpha` weighs missed foreground more
/// (0.3 / 0.7 is common); `alpha = beta = 0.5` is a soft Dice.
pub fn tversky_loss(logits: Tensor<4>, target: Tensor<3, Int>, alpha: f32, beta: f32) -> Tensor<1> {
    let [n, classes, h, w] = logits.dims();
    let probs = softmax(logits, 1);
    let one_hot = target.one_hot::<4>(classes).permute([0, 3, 1, 2]).float();
    let first = if classes > 1 { 1 } else { 0 };
    let probs = probs.slice([0..n, first..classes, 0..h, 0..w]);
    let one_hot = one_hot.slice([0..n, first..classes, 0..h, 0..w]);
    let sum = |x: Tensor<4>| x.sum_dim(0).sum_dim(2).sum_dim(3);
    let tp = sum(probs.clone() * one_hot.clone());
    let fp = sum(probs.clone()) - tp.clone();
    let fn_ = sum(one_hot) - tp.clone();
    let index = (tp.clone() + 1.0) / (tp + fp * alpha + fn_ * beta + 1.0);
    index.mean().neg() + 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Two pixels, two classes: logits (2, 0) with target 0 and (0, 1) with
    /// target 1. Softmax: p(0 | pixel 0) = e^2 / (e^2 + 1) = 0.880797,
    /// p(1 | pixel 1) = e / (1 + e) = 0.731059.
    fn case() -> (Tensor<4>, Tensor<3, Int>, [f64; 2]) {
        let device = Device::flex();
        // [N=1, C=2, H=1, W=2]: channel 0 then channel 1.
        let logits = Tensor::from_data(
            TensorData::new(vec![2.0f32, 0.0, 0.0, 1.0], [1, 2, 1, 2]),
            &device,
        );
        let target = Tensor::from_data(TensorData::new(vec![0i64, 1], [1, 1, 2]), &device);
        let p = [
            (2f64.exp()) / (2f64.exp() + 1.0),
            1f64.exp() / (1.0 + 1f64.exp()),
        ];
        (logits, target, p)
    }

    fn value(x: Tensor<1>) -> f64 {
        x.into_scalar::<f32>() as f64
    }

    #[test]
    fn weighted_cross_entropy_by_hand() {
        let (logits, target, p) = case();
        let device = Device::flex();
        let nll = p.map(|p| -p.ln()); // 0.126928, 0.313262
        let plain = value(weighted_cross_entropy(
            logits.clone(),
            target.clone(),
            None,
            None,
        ));
        assert!((plain - (nll[0] + nll[1]) / 2.0).abs() < 1e-6, "{plain}");
        assert!((plain - value(cross_entropy(logits.clone(), target.clone()))).abs() < 1e-6);
        // Class weights 1 and 3 (PyTorch's `weight=`): (1 * 0.126928 + 3 * 0.313262) / 4.
        let class = Tensor::from_data(TensorData::new(vec![1.0f32, 3.0], [2]), &device);
        let got = value(weighted_cross_entropy(
            logits.clone(),
            target.clone(),
            None,
            Some(class.clone()),
        ));
        assert!((got - (nll[0] + 3.0 * nll[1]) / 4.0).abs() < 1e-6, "{got}");
        // A weight map (2, 0.5) times the class weights: (2 * 1 * nll0 + 0.5 * 3 * nll1) / 3.5.
        let pixel = Tensor::from_data(TensorData::new(vec![2.0f32, 0.5], [1, 1, 2]), &device);
        let got = value(weighted_cross_entropy(
            logits,
            target,
            Some(pixel),
            Some(class),
        ));
        assert!(
            (got - (2.0 * nll[0] + 1.5 * nll[1]) / 3.5).abs() < 1e-6,
            "{got}"
        );
    }

    #[test]
    fn focal_loss_by_hand() {
        let (logits, target, p) = case();
        // gamma 2: mean of (1 - p)^2 (-ln p) = (0.014209 * 0.126928 + 0.072329 * 0.313262) / 2.
        let expected = p.iter().map(|p| (1.0 - p).powi(2) * -p.ln()).sum::<f64>() / 2.0;
        let got = value(focal_loss(logits.clone(), target.clone(), 2.0, None, None));
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        let ce = value(cross_entropy(logits.clone(), target.clone()));
        assert!((value(focal_loss(logits, target, 0.0, None, None)) - ce).abs() < 1e-6);
    }

    #[test]
    fn tversky_loss_by_hand() {
        let (logits, target, p) = case();
        // Foreground class 1: p1 = (1 - 0.880797, 0.731059), t1 = (0, 1).
        let p1 = [1.0 - p[0], p[1]];
        let tp = p1[1];
        let fp = p1[0];
        let fn_ = 1.0 - p1[1];
        let index = |a: f64, b: f64| (tp + 1.0) / (tp + a * fp + b * fn_ + 1.0);
        for (a, b) in [(0.5, 0.5), (0.3, 0.7)] {
            let got = value(tversky_loss(
                logits.clone(),
                target.clone(),
                a as f32,
                b as f32,
            ));
            assert!((got - (1.0 - index(a, b))).abs() < 1e-6, "alpha {a}: {got}");
        }
    }
}
