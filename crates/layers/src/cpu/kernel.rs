//! The three products of a convolution on contiguous `f32` buffers, as
//! im2col / col2im and one matrix product per image and group:
//!
//! - forward: `y[g] = W[g] x cols(x)`, `[c_out/g, K] x [K, oh*ow]`;
//! - input gradient: `dx += col2im(W[g]^T x dy[g])`, `[K, c_out/g] x [c_out/g, oh*ow]`;
//! - weight gradient: `dW[g] += dy[g] x cols(x)^T`, `[c_out/g, oh*ow] x [oh*ow, K]`;
//!
//! with `K = c_in/g * kh * kw` and `cols(x)` the `[K, oh*ow]` matrix whose
//! row `(c, i, j)` holds the input pixels tap `(i, j)` of channel `c` sees at
//! every output position (zero where it falls in the padding). Images run in
//! parallel when there are at least as many as threads; otherwise the matrix
//! products use the threads.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::rows::zip_strided;

/// Everything the kernels need to know about one convolution. Shapes are
/// those of the forward convolution `x [n, c_in, h, w] -> y [n, c_out, oh, ow]`
/// with weight `[c_out, c_in / groups, kh, kw]`; only the leading padding is
/// needed, the output size fixes the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub batch: usize,
    pub in_channels: usize,
    pub input: [usize; 2],
    pub out_channels: usize,
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub padding: [usize; 2],
    pub groups: usize,
}

impl ConvShape {
    pub(super) fn group_in(&self) -> usize {
        self.in_channels / self.groups
    }

    pub(super) fn group_out(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Rows of `cols`: `c_in / groups * kh * kw`.
    fn taps(&self) -> usize {
        self.group_in() * self.kernel[0] * self.kernel[1]
    }

    pub(super) fn input_len(&self) -> usize {
        self.in_channels * self.input[0] * self.input[1]
    }

    pub(super) fn output_len(&self) -> usize {
        self.out_channels * self.output[0] * self.output[1]
    }

    pub(super) fn pixels_out(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// Length of the im2col buffer: none where [`ConvShape::cols_are_input`].
    fn scratch_len(&self) -> usize {
        if self.cols_are_input() {
            0
        } else {
            self.taps() * self.pixels_out()
        }
    }

    /// `[batch, in_channels, height, width]` of the input.
    pub fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.input[0], self.input[1]]
    }

    /// `[batch, out_channels, height, width]` of the output.
    pub fn output_dims(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.output[0],
            self.output[1],
        ]
    }

    /// Elements of the weight tensor.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.taps()
    }

    /// For tap offset `offset` (`i * dilation - padding`) along an axis,
    /// the output positions `lo..hi` whose input coordinate
    /// `o * stride + offset` lies inside `0..size`.
    pub(crate) fn valid_range(
        offset: isize,
        stride: usize,
        size: usize,
        out: usize,
    ) -> (usize, usize) {
        let s = stride as isize;
        // smallest o with o * s + offset >= 0
        let lo = if offset >= 0 {
            0
        } else {
            (-offset + s - 1) / s
        };
        // largest o with o * s + offset <= size - 1, plus one
        let last = size as isize - 1 - offset;
        let hi = if last < 0 { 0 } else { last / s + 1 };
        let lo = (lo as usize).min(out);
        (lo, (hi as usize).clamp(lo, out))
    }

    /// Whether `cols(x)` is `x` itself (a 1x1 kernel, stride 1, no
    /// padding on either side, so the output is the input's size): then the
    /// kernels skip im2col and col2im.
    fn cols_are_input(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.padding == [0, 0]
            && self.output == self.input
    }

    /// Whether the taps are 2x2 patches side by side inside the input
    /// (kernel = stride = 2, no dilation, no padding before, and none after
    /// that a patch reaches: the output is the input's half; the U-Net's
    /// up-convolution is the adjoint of such a convolution): then `cols(x)`
    /// only reorders `x`'s pixels.
    fn is_2x2_patches(&self) -> bool {
        self.kernel == [2, 2]
            && self.stride == [2, 2]
            && self.dilation == [1, 1]
            && self.padding == [0, 0]
            && self.output == [self.input[0] / 2, self.input[1] / 2]
    }

    /// The input coordinate offset of tap `i` along `axis`.
    pub(crate) fn offset(&self, axis: usize, i: usize) -> isize {
        (i * self.dilation[axis]) as isize - self.padding[axis] as isize
    }
}

/// Fills `cols` (`[K, oh*ow]`) from the channels of group `group` of one image `x` (`[c_in, h, w]`).
fn im2col(shape: &ConvShape, x: &[f32], group: usize, cols: &mut [f32]) {
    if shape.is_2x2_patches() {
        return im2col_2x2(shape, x, group, cols);
    }
    let [h, w] = shape.input;
    let [oh, ow] = shape.output;
    let [kh, kw] = shape.kernel;
    let [sh, sw] = shape.stride;
    let mut rows = cols.chunks_exact_mut(oh * ow);
    for c in 0..shape.group_in() {
        let plane = &x[(group * shape.group_in() + c) * h * w..][..h * w];
        for i in 0..kh {
            let dy = shape.offset(0, i);
            let (y_lo, y_hi) = ConvShape::valid_range(dy, sh, h, oh);
            for j in 0..kw {
                let dx = shape.offset(1, j);
                let (x_lo, x_hi) = ConvShape::valid_range(dx, sw, w, ow);
                let row = rows.next().expect("cols holds K rows");
                row[..y_lo * ow].fill(0.0);
                row[y_hi * ow..].fill(0.0);
                for oy in y_lo..y_hi {
                    let src = &plane[((oy * sh) as isize + dy) as usize * w..][..w];
                    let dst = &mut row[oy * ow..][..ow];
                    dst[..x_lo].fill(0.0);
                    dst[x_hi..].fill(0.0);
                    if x_lo < x_hi {
                        let start = ((x_lo * sw) as isize + dx) as usize;
                        let n = x_hi - x_lo;
                        zip_strided(&mut dst[x_lo..], 1, &src[start..], sw, n, |d, s| *d = s);
                    }
                }
            }
        }
    }
}

/// `cols(x)` of group `group` of one image: `x`'s own channels where
/// [`ConvShape::cols_are_input`], else [`im2col`] into `scratch`.
fn group_cols<'a>(
    shape: &ConvShape,
    x: &'a [f32],
    group: usize,
    scratch: &'a mut [f32],
) -> &'a [f32] {
    let len = shape.taps() * shape.pixels_out();
    if shape.cols_are_input() {
        &x[group * len..][..len]
    } else {
        im2col(shape, x, group, scratch);
        scratch
    }
}

/// [`im2col`] for 2x2 patches side by side ([`ConvShape::is_2x2_patches`]):
/// each input row's pixels dealt alternately to the rows of taps `(i, 0)`
/// and `(i, 1)`, pairs zipped so that the copy is a vector loop.
fn im2col_2x2(shape: &ConvShape, x: &[f32], group: usize, cols: &mut [f32]) {
    let (w, [oh, ow]) = (shape.input[1], shape.output);
    let (p, gi) = (oh * ow, shape.group_in());
    let planes = x[group * gi * shape.input[0] * w..].chunks_exact(shape.input[0] * w);
    for (plane, taps) in planes.zip(cols.chunks_exact_mut(4 * p)) {
        let (top, bottom) = taps.split_at_mut(2 * p);
        for (i, taps) in [top, bottom].into_iter().enumerate() {
            let (even, odd) = taps.split_at_mut(p);
            let rows = even.chunks_exact_mut(ow).zip(odd.chunks_exact_mut(ow));
            for (oy, (even, odd)) in rows.enumerate() {
                let src = &plane[(2 * oy + i) * w..][..2 * ow];
                for ((e, o), pair) in even.iter_mut().zip(odd).zip(src.chunks_exact(2)) {
                    (*e, *o) = (pair[0], pair[1]);
                }
            }
        }
    }
}

/// [`col2im_add`] for 2x2 patches side by side: the adjoint of
/// [`im2col_2x2`], the rows of taps `(i, 0)` and `(i, 1)` interleaved back
/// into an input row.
fn col2im_add_2x2(shape: &ConvShape, cols: &[f32], group: usize, dx: &mut [f32]) {
    let (w, [oh, ow]) = (shape.input[1], shape.output);
    let (p, gi) = (oh * ow, shape.group_in());
    let planes = dx[group * gi * shape.input[0] * w..].chunks_exact_mut(shape.input[0] * w);
    for (plane, taps) in planes.zip(cols.chunks_exact(4 * p)) {
        for (i, taps) in taps.chunks_exact(2 * p).enumerate() {
            let (even, odd) = taps.split_at(p);
            let rows = even.chunks_exact(ow).zip(odd.chunks_exact(ow));
            for (oy, (even, odd)) in rows.enumerate() {
                let dst = &mut plane[(2 * oy + i) * w..][..2 * ow];
                for ((pair, e), o) in dst.chunks_exact_mut(2).zip(even).zip(odd) {
                    pair[0] += e;
                    pair[1] += o;
                }
            }
        }
    }
}

/// Adds `cols` (`[K, oh*ow]`) back into the channels of group `group` of one
/// image gradient `dx` (`[c_in, h, w]`): the adjoint of [`im2col`].
fn col2im_add(shape: &ConvShape, cols: &[f32], group: usize, dx: &mut [f32]) {
    if shape.is_2x2_patches() {
        return col2im_add_2x2(shape, cols, group, dx);
    }
    let [h, w] = shape.input;
    let [oh, ow] = shape.output;
    let [kh, kw] = shape.kernel;
    let [sh, sw] = shape.stride;
    let mut rows = cols.chunks_exact(oh * ow);
    for c in 0..shape.group_in() {
        let plane = &mut dx[(group * shape.group_in() + c) * h * w..][..h * w];
        for i in 0..kh {
            let dy = shape.offset(0, i);
            let (y_lo, y_hi) = ConvShape::valid_range(dy, sh, h, oh);
            for j in 0..kw {
                let dxo = shape.offset(1, j);
                let (x_lo, x_hi) = ConvShape::valid_range(dxo, sw, w, ow);
                let row = rows.next().expect("cols holds K rows");
                if x_lo >= x_hi {
                    continue;
                }
                for oy in y_lo..y_hi {
                    let dst = &mut plane[((oy * sh) as isize + dy) as usize * w..][..w];
                    let src = &row[oy * ow + x_lo..oy * ow + x_hi];
                    let start = ((x_lo * sw) as isize + dxo) as usize;
                    zip_strided(&mut dst[start..], sw, src, 1, src.len(), |d, s| *d += s);
                }
            }
        }
    }
}

/// A `rows x cols` matrix inside a slice, element `(r, c)` at
/// `r * row_stride + c * col_stride`; the constructors check that every
/// element lies inside the slice.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// The offset of the last element of a `rows x cols` matrix with these
/// strides, if it has one and the offset fits in `usize`.
///
/// # Panics
/// If a stride does not fit in `isize` (what `gemm` takes), used or not.
fn last_offset(
    [rows, cols]: [usize; 2],
    [row_stride, col_stride]: [usize; 2],
) -> Option<Option<usize>> {
    assert!(
        isize::try_from(row_stride).is_ok() && isize::try_from(col_stride).is_ok(),
        "strides {row_stride}, {col_stride} beyond isize"
    );
    match (rows.checked_sub(1), cols.checked_sub(1)) {
        (Some(r), Some(c)) => Some(
            r.checked_mul(row_stride)
                .and_then(|a| c.checked_mul(col_stride).and_then(|b| a.checked_add(b))),
        ),
        _ => None,
    }
}

impl<'a> Mat<'a> {
    /// # Panics
    /// If an element lies outside `data`.
    pub(super) fn new(
        data: &'a [f32],
        [rows, cols]: [usize; 2],
        [row_stride, col_stride]: [usize; 2],
    ) -> Self {
        if let Some(end) = last_offset([rows, cols], [row_stride, col_stride]) {
            assert!(
                end.is_some_and(|end| end < data.len()),
                "a {rows}x{cols} matrix with strides {row_stride}, {col_stride} overruns {} values",
                data.len()
            );
        }
        Mat {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The row-major `rows x cols` matrix at the start of `data`.
    pub(super) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, [rows, cols], [cols, 1])
    }

    /// The transpose of the row-major `cols x rows` matrix at the start of
    /// `data`, read in place.
    pub(super) fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, [rows, cols], [1, rows])
    }
}

/// A matrix product's destination: `rows x cols` inside a slice, row `r`
/// at `r * row_stride`, its elements contiguous. The constructor checks that
/// every element lies inside the slice and that rows do not overlap, so
/// every element is a distinct value.
pub(super) struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// # Panics
    /// If an element lies outside `data` or rows overlap (`row_stride < cols`
    /// with more than one row).
    pub(super) fn new(data: &'a mut [f32], [rows, cols]: [usize; 2], row_stride: usize) -> Self {
        assert!(
            rows <= 1 || row_stride >= cols,
            "rows of {cols} values {row_stride} apart overlap"
        );
        if let Some(end) = last_offset([rows, cols], [row_stride, 1]) {
            assert!(
                end.is_some_and(|end| end < data.len()),
                "a {rows}x{cols} destination with row stride {row_stride} overruns {} values",
                data.len()
            );
        }
        MatMut {
            data,
            rows,
            cols,
            row_stride,
        }
    }

    /// The row-major `rows x cols` matrix at the start of `data`.
    pub(super) fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, [rows, cols], cols)
    }
}

/// `dst [m, n] = accumulate * dst + lhs [m, k] x rhs [k, n]`.
///
/// # Panics
/// If the dimensions of the three do not fit together.
pub(super) fn matmul(dst: MatMut, lhs: Mat, rhs: Mat, accumulate: bool, parallelism: Parallelism) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions of a matrix product");
    assert_eq!(
        [dst.rows, dst.cols],
        [m, n],
        "destination of a matrix product"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `gemm` reads `lhs` at `i * row_stride + l * col_stride` for
    // `i < m`, `l < k` and `rhs` likewise for `l < k`, `j < n`: inside their
    // slices, as `Mat::new` checked. It writes `dst` at `i * row_stride + j`
    // for `i < m`, `j < n`: inside `dst` and each element once, as
    // `MatMut::new` checked. The destination does not overlap the operands:
    // it is borrowed mutably, they are shared. Every stride fits in `isize`,
    // as `last_offset` checked for all three.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// How to share the threads: over images, or inside each matrix product.
fn split(batch: usize) -> (bool, Parallelism) {
    let threads = rayon::current_num_threads();
    if threads > 1 && batch >= threads {
        (true, Parallelism::None)
    } else if threads > 1 {
        (false, Parallelism::Rayon(0))
    } else {
        (false, Parallelism::None)
    }
}

/// An im2col buffer of at least `len` values, borrowed from the calling
/// thread's cache and handed back on drop.
///
/// The buffers are large (`c_in * kh * kw * oh * ow` values, 9 MiB per image
/// for a 3x3 convolution of 16 channels at 128x128) and every convolution
/// needs three (forward and both gradients); allocating and zeroing them each
/// time cost 12% of a U-Net training step. Each thread keeps the largest
/// buffer it has used. Taking the buffer out of the thread-local cell, rather
/// than borrowing it, keeps a nested call on the same thread (a rayon worker
/// that steals another image while it waits) correct: it finds the cell empty
/// and allocates its own.
struct Scratch {
    buffer: Vec<f32>,
    len: usize,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Scratch {
    fn take(len: usize) -> Self {
        let mut buffer = SCRATCH.take();
        if buffer.len() < len {
            // Only growth is zeroed; the kernels overwrite what they use.
            buffer.resize(len, 0.0);
        }
        Scratch { buffer, len }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buffer[..self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buffer[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        let kept = SCRATCH.take();
        SCRATCH.set(if kept.len() > buffer.len() {
            kept
        } else {
            buffer
        });
    }
}

/// Values below which a buffer is zeroed by the calling thread alone.
const PARALLEL_ZEROS: usize = 1 << 16;

/// A buffer of `len` zeros for a kernel's output, zeroed by all threads
/// together when it is large: the allocator hands back reused memory, which
/// `calloc` zeroes on the calling thread while the others wait.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    if len < PARALLEL_ZEROS {
        return vec![0.0; len];
    }
    let mut buffer = Vec::with_capacity(len);
    buffer.par_extend(rayon::iter::repeat_n(0.0, len));
    buffer
}

/// Runs `per_image(image, output, scratch)` for every image, in parallel when [`split`] says so.
pub(super) fn for_each_image<T: Send>(
    batch: usize,
    outputs: &mut [T],
    chunk: usize,
    scratch_len: usize,
    per_image: impl Fn(usize, &mut [T], &mut [f32], Parallelism) + Sync,
) {
    let (over_images, parallelism) = split(batch);
    if over_images {
        outputs.par_chunks_mut(chunk).enumerate().for_each_init(
            || Scratch::take(scratch_len),
            |scratch, (b, out)| per_image(b, out, scratch, parallelism),
        );
    } else {
        let mut scratch = Scratch::take(scratch_len);
        for (b, out) in outputs.chunks_mut(chunk).enumerate() {
            per_image(b, out, &mut scratch, parallelism);
        }
    }
}

/// The convolution of `x` (`[n, c_in, h, w]`) with `weight` (`[c_out, c_in/g, kh, kw]`):
/// `[n, c_out, oh, ow]`, without bias.
pub(crate) fn forward(shape: &ConvShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, go, p) = (shape.taps(), shape.group_out(), shape.pixels_out());
    let mut y = zeros(shape.batch * shape.output_len());
    if shape.batch == 0 || p == 0 {
        return y;
    }
    for_each_image(
        shape.batch,
        &mut y,
        shape.output_len(),
        shape.scratch_len(),
        |b, y, cols, parallelism| {
            let x = &x[b * shape.input_len()..][..shape.input_len()];
            for g in 0..shape.groups {
                let cols = group_cols(shape, x, g, cols);
                matmul(
                    MatMut::rows(&mut y[g * go * p..], go, p),
                    Mat::rows(&weight[g * go * k..], go, k),
                    Mat::rows(cols, k, p),
                    false,
                    parallelism,
                );
            }
        },
    );
    y
}

/// The gradient of the input: `[n, c_in, h, w]` from `dy` (`[n, c_out, oh, ow]`).
/// It is also the transposed convolution of `dy` with `weight`.
pub(crate) fn input_grad(shape: &ConvShape, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, go, p) = (shape.taps(), shape.group_out(), shape.pixels_out());
    let mut dx = zeros(shape.batch * shape.input_len());
    if shape.batch == 0 || p == 0 {
        return dx;
    }
    for_each_image(
        shape.batch,
        &mut dx,
        shape.input_len(),
        shape.scratch_len(),
        |b, dx, cols, parallelism| {
            let dy = &dy[b * shape.output_len()..][..shape.output_len()];
            for g in 0..shape.groups {
                let lhs = Mat::transposed(&weight[g * go * k..], k, go);
                let rhs = Mat::rows(&dy[g * go * p..], go, p);
                if shape.cols_are_input() {
                    let dx = MatMut::rows(&mut dx[g * k * p..], k, p);
                    matmul(dx, lhs, rhs, false, parallelism);
                } else {
                    matmul(MatMut::rows(cols, k, p), lhs, rhs, false, parallelism);
                    col2im_add(shape, cols, g, dx);
                }
            }
        },
    );
    dx
}

/// The gradient of the weight: `[c_out, c_in/g, kh, kw]` from `x` and `dy`.
///
/// Each group's product is computed transposed, `dW[g]^T += cols(x) x dy[g]^T`
/// (`[K, oh*ow] x [oh*ow, c_out/g]`), and the small result transposed at the
/// end. The orientation matters: `gemm` makes its destination column-major,
/// and in this one the large `cols(x)` is its right-hand side with the
/// reduction dimension contiguous, which it reads in place; computed as
/// `dy[g] x cols(x)^T` it would first copy all of `cols(x)` into packed
/// panels. 1.7-1.9x faster at U-Net shapes.
pub(crate) fn weight_grad(shape: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, go, p) = (shape.taps(), shape.group_out(), shape.pixels_out());
    accumulate_weight_grad(shape, shape.scratch_len(), |b, dwt, cols, parallelism| {
        let x = &x[b * shape.input_len()..][..shape.input_len()];
        let dy = &dy[b * shape.output_len()..][..shape.output_len()];
        for g in 0..shape.groups {
            let cols = group_cols(shape, x, g, cols);
            matmul(
                MatMut::rows(&mut dwt[g * k * go..], k, go),
                Mat::rows(cols, k, p),
                Mat::transposed(&dy[g * go * p..], p, go),
                true,
                parallelism,
            );
        }
    })
}

/// The weight gradient as a sum over images: `per_image(b, dwt, scratch,
/// parallelism)` adds image `b`'s part to `dwt`, the gradient transposed
/// per group (`[groups, K, c_out/g]`, row `c * kh * kw + tap`), with a
/// scratch buffer of `scratch_len` values. When [`split`] runs images in
/// parallel, each thread sums a contiguous run of images into its own
/// `dwt`; the runs' sums are added in order, so the result does not depend
/// on which thread ran what. The result is the sum, transposed into
/// `[c_out, c_in/g, kh, kw]`.
pub(super) fn accumulate_weight_grad(
    shape: &ConvShape,
    scratch_len: usize,
    per_image: impl Fn(usize, &mut [f32], &mut [f32], Parallelism) + Sync,
) -> Vec<f32> {
    let len = shape.weight_len();
    if shape.batch == 0 || shape.pixels_out() == 0 {
        return vec![0.0; len];
    }
    let (over_images, parallelism) = split(shape.batch);
    let runs = if over_images {
        rayon::current_num_threads().min(shape.batch)
    } else {
        1
    };
    let per_run = shape.batch.div_ceil(runs);
    let sum_run = |run: usize| {
        let mut dwt = vec![0.0; len];
        let mut scratch = Scratch::take(scratch_len);
        for b in run * per_run..((run + 1) * per_run).min(shape.batch) {
            per_image(b, &mut dwt, &mut scratch, parallelism);
        }
        dwt
    };
    let sums: Vec<Vec<f32>> = if runs == 1 {
        vec![sum_run(0)]
    } else {
        (0..runs).into_par_iter().map(sum_run).collect()
    };
    let mut dw = vec![0.0; len];
    let (k, go) = (shape.taps(), shape.group_out());
    for (g, dw) in dw.chunks_exact_mut(go * k).enumerate() {
        let parts: Vec<&[f32]> = sums.iter().map(|s| &s[g * k * go..][..k * go]).collect();
        transpose_sum(&parts, [k, go], dw);
    }
    dw
}

/// `dst` (`[cols, rows]`) = the transpose of the sum of `parts` (each
/// `[rows, cols]`, added in order), in tiles that stay in the first-level
/// cache: the rows are thousands of values apart in `dst`.
fn transpose_sum(parts: &[&[f32]], [rows, cols]: [usize; 2], dst: &mut [f32]) {
    const TILE: usize = 16;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    let at = r * cols + c;
                    dst[c * rows + r] = parts.iter().fold(0.0, |sum, part| sum + part[at]);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The convolution and its two gradients by their definitions, in f64:
    /// `(y, dx, dw)` for output gradient `dy`.
    pub(crate) fn reference(
        shape: &ConvShape,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let [h, wd] = shape.input;
        let [oh, ow] = shape.output;
        let [kh, kw] = shape.kernel;
        let (gi, go) = (shape.group_in(), shape.group_out());
        let mut y = vec![0.0; shape.batch * shape.output_len()];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        for b in 0..shape.batch {
            for co in 0..shape.out_channels {
                let g = co / go;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let yi = ((b * shape.out_channels + co) * oh + oy) * ow + ox;
                        for c in 0..gi {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (oy * shape.stride[0]) as isize + shape.offset(0, i);
                                    let ix = (ox * shape.stride[1]) as isize + shape.offset(1, j);
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((b * shape.in_channels + g * gi + c) * h
                                        + iy as usize)
                                        * wd
                                        + ix as usize;
                                    let wi = ((co * gi + c) * kh + i) * kw + j;
                                    y[yi] += x[xi] as f64 * w[wi] as f64;
                                    dx[xi] += dy[yi] as f64 * w[wi] as f64;
                                    dw[wi] += dy[yi] as f64 * x[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    /// A kernel: `(shape, a, b) -> result`, as [`forward`], [`input_grad`], [`weight_grad`].
    pub(crate) type Kernel = fn(&ConvShape, &[f32], &[f32]) -> Vec<f32>;

    /// Checks `forward`, `input_grad` and, when given, `weight_grad` on
    /// `shape` against [`reference`].
    pub(crate) fn check_kernels(
        shape: &ConvShape,
        forward: Kernel,
        input_grad: Kernel,
        weight_grad: Option<Kernel>,
    ) {
        let x = values(shape.batch * shape.input_len(), 1);
        let w = values(shape.weight_len(), 2);
        let dy = values(shape.batch * shape.output_len(), 3);
        let (y, dx, dw) = reference(shape, &x, &w, &dy);
        assert_close("forward", shape, &forward(shape, &x, &w), &y);
        assert_close("input_grad", shape, &input_grad(shape, &dy, &w), &dx);
        if let Some(weight_grad) = weight_grad {
            assert_close("weight_grad", shape, &weight_grad(shape, &x, &dy), &dw);
        }
    }

    pub(crate) fn assert_close(name: &str, shape: &ConvShape, ours: &[f32], expected: &[f64]) {
        assert_eq!(ours.len(), expected.len(), "{name} {shape:?}");
        for (a, b) in ours.iter().zip(expected) {
            assert!((*a as f64 - b).abs() < 1e-4, "{name} {shape:?}: {a} vs {b}");
        }
    }

    pub(crate) fn values(len: usize, seed: u32) -> Vec<f32> {
        // A small deterministic sequence in [-1, 1).
        (0..len as u32)
            .map(|i| {
                let v = i
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(97));
                (v >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Test shapes: the variants of `base` with their output sizes filled in
    /// (symmetric padding).
    pub(crate) fn with_outputs(variants: &[ConvShape]) -> Vec<ConvShape> {
        variants
            .iter()
            .map(|s| {
                let out = |a: usize| {
                    (s.input[a] + 2 * s.padding[a] - s.dilation[a] * (s.kernel[a] - 1) - 1)
                        / s.stride[a]
                        + 1
                };
                ConvShape {
                    output: [out(0), out(1)],
                    ..*s
                }
            })
            .collect()
    }

    pub(crate) const BASE: ConvShape = ConvShape {
        batch: 3,
        in_channels: 4,
        input: [7, 6],
        out_channels: 6,
        output: [0, 0],
        kernel: [3, 2],
        stride: [1, 1],
        dilation: [1, 1],
        padding: [1, 0],
        groups: 1,
    };

    fn shapes() -> Vec<ConvShape> {
        let base = BASE;
        let mut shapes = with_outputs(&[
            base,
            ConvShape {
                stride: [2, 3],
                ..base
            },
            ConvShape {
                dilation: [2, 2],
                padding: [2, 1],
                ..base
            },
            ConvShape { groups: 2, ..base },
            ConvShape {
                groups: 2,
                batch: 1,
                padding: [0, 3],
                ..base
            },
            ConvShape {
                in_channels: 6,
                groups: 6,
                kernel: [3, 3],
                padding: [1, 1],
                ..base
            },
            ConvShape {
                kernel: [1, 1],
                padding: [0, 0],
                ..base
            },
            ConvShape {
                kernel: [1, 1],
                padding: [0, 0],
                groups: 2,
                ..base
            },
            // 2x2 patches side by side (the up-convolution's adjoint), on
            // an odd height, then an odd width, that no patch covers whole.
            ConvShape {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                ..base
            },
            ConvShape {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                groups: 2,
                input: [8, 11],
                ..base
            },
        ]);
        // A 1x1 kernel with padding only after the input (bottom and right):
        // the output is larger than the input, so it is not its own im2col.
        shapes.push(ConvShape {
            kernel: [1, 1],
            padding: [0, 0],
            output: [base.input[0] + 2, base.input[1] + 1],
            ..base
        });
        // 2x2 patches with padding only after the input: the last patches
        // reach into it (7 rows + 1 -> 4, 6 columns + 1 -> 3).
        shapes.push(ConvShape {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            output: [4, 3],
            ..base
        });
        shapes
    }

    #[test]
    fn forward_and_gradients_are_the_definitions() {
        for shape in shapes() {
            check_kernels(&shape, forward, input_grad, Some(weight_grad));
        }
    }

    #[test]
    fn weight_gradient_sums_uneven_runs_of_images_the_same_every_time() {
        // Batch 5 on 2 threads: runs of 3 and 2 images, their sums added
        // and transposed per group.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for shape in with_outputs(&[
            ConvShape { batch: 5, ..BASE },
            ConvShape {
                batch: 5,
                groups: 2,
                ..BASE
            },
        ]) {
            pool.install(|| {
                check_kernels(&shape, forward, input_grad, Some(weight_grad));
                let x = values(shape.batch * shape.input_len(), 1);
                let dy = values(shape.batch * shape.output_len(), 3);
                let first = weight_grad(&shape, &x, &dy);
                for _ in 0..3 {
                    assert_eq!(weight_grad(&shape, &x, &dy), first, "{shape:?}");
                }
            });
        }
    }

    #[test]
    fn nested_scratch_buffers_are_distinct_and_the_largest_is_kept() {
        let outer = Scratch::take(1000);
        {
            // A nested call on the same thread (a rayon worker stealing an
            // image) must not get the buffer the outer call is using.
            let inner = Scratch::take(10);
            assert_ne!(inner.as_ptr(), outer.as_ptr());
            assert_eq!(inner.len(), 10);
        }
        let outer_ptr = outer.as_ptr();
        drop(outer);
        let again = Scratch::take(500);
        assert_eq!(
            again.as_ptr(),
            outer_ptr,
            "the larger buffer is the one kept"
        );
        assert_eq!(again.len(), 500);
    }
}
