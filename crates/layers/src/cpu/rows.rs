//! The row loop every CPU kernel is built of: walk a destination row and a
//! source row together, either of them strided (a strided convolution reads
//! or writes every `stride`-th input pixel).

/// Calls `f(&mut dst[i * dst_stride], src[i * src_stride])` for `i` in `0..n`.
///
/// Both strides 1 is the common case and gets a loop the compiler
/// vectorises; it is inlined into each caller for that reason.
///
/// # Panics
/// If either row is shorter than `n` strided elements.
#[inline(always)]
pub(super) fn zip_strided(
    dst: &mut [f32],
    dst_stride: usize,
    src: &[f32],
    src_stride: usize,
    n: usize,
    f: impl Fn(&mut f32, f32),
) {
    if n == 0 {
        return;
    }
    if (dst_stride, src_stride) == (1, 1) {
        for (d, s) in dst[..n].iter_mut().zip(&src[..n]) {
            f(d, *s);
        }
    } else {
        let dst = &mut dst[..(n - 1) * dst_stride + 1];
        let src = &src[..(n - 1) * src_stride + 1];
        for (d, s) in dst
            .iter_mut()
            .step_by(dst_stride)
            .zip(src.iter().step_by(src_stride))
        {
            f(d, *s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_reads_and_writes() {
        let src = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut dst = [0.0; 3];
        zip_strided(&mut dst, 1, &src, 2, 3, |d, s| *d = s);
        assert_eq!(dst, [1.0, 3.0, 5.0]);
        let mut dst = [1.0; 5];
        zip_strided(&mut dst, 2, &[1.0, 2.0, 3.0], 1, 3, |d, s| *d += 10.0 * s);
        assert_eq!(dst, [11.0, 1.0, 21.0, 1.0, 31.0]);
        let mut dst = [0.0; 2];
        zip_strided(&mut dst, 1, &[3.0, 4.0, 9.0], 1, 2, |d, s| *d -= s);
        assert_eq!(dst, [-3.0, -4.0]);
    }
}
