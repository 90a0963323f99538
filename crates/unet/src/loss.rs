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
