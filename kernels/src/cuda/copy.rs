//! Data movement on the GPU: strided gathers into dense buffers ([`copy_strided`]: what
//! `Tensor::contiguous` runs, and how broadcasts are materialised), 2-D block copies ([`copy_2d`]:
//! concat, split, narrow backward), dtype conversion ([`convert`]) and [`fill`]. The CUDA twin of
//! `cpu::copy`.
//!
//! Every copy goes through one kernel family, `copy_nd_w{1,2,4,8,16}_{u32,u64}`, which moves raw
//! words over a shared shape with a stride set per side. The launcher first simplifies the view
//! ([`collapse`]: size-1 dimensions dropped, neighbours that are contiguous on both sides merged),
//! then widens the element to 16 bytes where the innermost dimension is contiguous and aligned
//! ([`widen`]): a dense copy of any dtype becomes a 1-D copy of 16-byte words.
//!
//! Bytes moved per element: 2 x element size (read + write) for every kernel here except
//! [`fill`] (1 x) and [`convert`] (4 + 2 bytes).
//!
//! The helpers at the end ([`grid_stride`], [`collapse`], [`scratch`], ...) are shared by the
//! sibling launchers (elementwise, reduce, dropout, optim).

use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, DeviceBuffer, Dims6, Dt, Gpu, Launch};

pub static SOURCE: Source = Source { name: "copy", code: include_str!("../../cuda/copy.cu"), sm90a: false };

/// dst: (prod src_dims.shape), dense row-major = the view `src_dims` of src, for elements of
/// `elem_bytes` bytes (1, 2, 4 or 8: any dtype, i64 ids included). `src` points at the view's
/// first element; strides are in elements and may be 0 (broadcast) or in any order (permuted
/// views). Rank 0..=6. dst must not overlap src.
pub fn copy_strided(g: &Gpu, elem_bytes: usize, dst: DevPtr, src: DevPtr, src_dims: &Dims6) -> CudaResult<()> {
    let what = "copy_strided";
    check_elem_bytes(what, elem_bytes)?;
    let (shape, src_strides) = dims_parts(what, src_dims)?;
    let dst_strides = dense_strides(&shape);
    copy_nd(g, what, elem_bytes, &shape, dst, &dst_strides, src, &src_strides)
}

/// dst[r * dst_ld + c] = src[r * src_ld + c] for r < rows, c < cols (elements of `elem_bytes`
/// bytes). With rows > 1 each leading dimension must be >= cols. dst must not overlap src.
#[allow(clippy::too_many_arguments)]
pub fn copy_2d(
    g: &Gpu,
    elem_bytes: usize,
    dst: DevPtr,
    dst_ld: usize,
    src: DevPtr,
    src_ld: usize,
    rows: usize,
    cols: usize,
) -> CudaResult<()> {
    let what = "copy_2d";
    check_elem_bytes(what, elem_bytes)?;
    if rows > 1 && (dst_ld < cols || src_ld < cols) {
        return Err(CudaError(format!(
            "{what}: leading dimensions dst_ld {dst_ld} / src_ld {src_ld} below cols {cols} ({rows} rows)"
        )));
    }
    let shape = [to_i64(what, rows)?, to_i64(what, cols)?];
    let dst_strides = [to_i64(what, dst_ld)?, 1];
    let src_strides = [to_i64(what, src_ld)?, 1];
    copy_nd(g, what, elem_bytes, &shape, dst, &dst_strides, src, &src_strides)
}

/// dst: (n) of dst_dt = src: (n) of src_dt. f32 -> bf16 rounds to nearest even (as
/// `half::bf16::from_f32`), bf16 -> f32 is exact, the same type is a plain copy.
pub fn convert(g: &Gpu, dst: DevPtr, dst_dt: Dt, src: DevPtr, src_dt: Dt, n: usize) -> CudaResult<()> {
    let what = "convert";
    if n == 0 {
        return Ok(());
    }
    check_ptrs(what, &[dst, src])?;
    let kernel = match (src_dt, dst_dt) {
        (a, b) if a == b => {
            let shape = [to_i64(what, n)?];
            return copy_nd(g, what, a.size(), &shape, dst, &[1], src, &[1]);
        }
        (Dt::F32, Dt::BF16) => "f32_to_bf16",
        (Dt::BF16, Dt::F32) => "bf16_to_f32",
        _ => unreachable!("two dtypes, the equal case handled above"),
    };
    g.launch(&SOURCE, kernel, grid_stride(g, n.div_ceil(4)), &[Arg::Ptr(dst), Arg::Ptr(src), Arg::I64(n as i64)])
}

/// dst: (n) = value, rounded once to `dt`.
pub fn fill(g: &Gpu, dt: Dt, dst: DevPtr, n: usize, value: f32) -> CudaResult<()> {
    if n == 0 {
        return Ok(());
    }
    check_ptrs("fill", &[dst])?;
    let per_word = 16 / dt.size();
    g.launch(
        &SOURCE,
        &kernel_name("fill", dt),
        grid_stride(g, n.div_ceil(per_word)),
        &[Arg::Ptr(dst), Arg::I64(n as i64), Arg::F32(value)],
    )
}

/// The shared driver: dst (through dst_strides) = src (through src_strides) over `shape`.
#[allow(clippy::too_many_arguments)]
fn copy_nd(
    g: &Gpu,
    what: &str,
    elem_bytes: usize,
    shape: &[i64],
    dst: DevPtr,
    dst_strides: &[i64],
    src: DevPtr,
    src_strides: &[i64],
) -> CudaResult<()> {
    let n = numel(what, shape)?;
    if n == 0 {
        return Ok(());
    }
    check_ptrs(what, &[dst, src])?;
    let (shape, [dst_strides, src_strides]) = collapse(shape, [dst_strides, src_strides]);
    let (word, shape, [dst_strides, src_strides]) = widen(elem_bytes, shape, [dst_strides, src_strides], &[dst, src]);
    let words = numel(what, &shape)?;
    let (index, n_arg) = index_arg(words);
    let kernel = format!("copy_nd_w{word}_{index}");
    let args = [
        Arg::Ptr(dst),
        Arg::Dims(make_dims(&shape, &dst_strides)),
        Arg::Ptr(src),
        Arg::Dims(make_dims(&shape, &src_strides)),
        n_arg,
    ];
    g.launch(&SOURCE, &kernel, grid_stride(g, words), &args)
}

fn check_elem_bytes(what: &str, elem_bytes: usize) -> CudaResult<()> {
    if matches!(elem_bytes, 1 | 2 | 4 | 8) {
        Ok(())
    } else {
        Err(CudaError(format!("{what}: element size {elem_bytes} B (1, 2, 4 or 8 supported)")))
    }
}

// ------------------------------------------------------------------------------------ shared helpers

/// Threads per block of the grid-stride kernels of these families.
pub(super) const THREADS: u32 = 256;

/// A grid-stride launch over `items` work items (one per thread per pass): as many blocks as fill
/// the device once (2048 resident threads per SM on sm_80 / sm_90), fewer for small jobs.
pub(super) fn grid_stride(g: &Gpu, items: usize) -> Launch {
    let full = g.sm_count().max(1) * (2048 / THREADS as usize);
    let blocks = items.div_ceil(THREADS as usize).clamp(1, full);
    Launch { grid: (blocks as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 }
}

/// The index type of a kernel over `n` items and its `n` argument: 32-bit arithmetic when every
/// index (plus one grid stride, at most 2^31 more) stays below 2^32.
pub(super) fn index_arg(n: usize) -> (&'static str, Arg) {
    if n <= i32::MAX as usize {
        ("u32", Arg::I32(n as i32))
    } else {
        ("u64", Arg::U64(n as u64))
    }
}

/// Errors naming the op when a pointer is null (a launch with n > 0 would fault).
pub(super) fn check_ptrs(what: &str, ptrs: &[DevPtr]) -> CudaResult<()> {
    if ptrs.iter().any(|p| p.0 == 0) {
        return Err(CudaError(format!("{what}: null device pointer")));
    }
    Ok(())
}

pub(super) fn to_i64(what: &str, v: usize) -> CudaResult<i64> {
    i64::try_from(v).map_err(|_| CudaError(format!("{what}: size {v} does not fit in i64")))
}

/// The element count of `shape` (checked for negative sizes and overflow).
pub(super) fn numel(what: &str, shape: &[i64]) -> CudaResult<usize> {
    let mut n: usize = 1;
    for &s in shape {
        let s = usize::try_from(s).map_err(|_| CudaError(format!("{what}: negative size in shape {shape:?}")))?;
        n = n.checked_mul(s).ok_or_else(|| CudaError(format!("{what}: shape {shape:?} overflows")))?;
    }
    Ok(n)
}

/// Shape and strides of a [`Dims6`], checked (rank 0..=6).
pub(super) fn dims_parts(what: &str, d: &Dims6) -> CudaResult<(Vec<i64>, Vec<i64>)> {
    if !(0..=6).contains(&d.rank) {
        return Err(CudaError(format!("{what}: rank {} (0..=6 supported)", d.rank)));
    }
    let r = d.rank as usize;
    numel(what, &d.shape[..r])?;
    Ok((d.shape[..r].to_vec(), d.stride[..r].to_vec()))
}

/// Row-major strides (in elements) of a dense tensor of `shape`.
pub(super) fn dense_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![1i64; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1].max(1);
    }
    strides
}

/// A [`Dims6`] from a shape and its strides (rank <= 6; unused slots zero).
pub(super) fn make_dims(shape: &[i64], strides: &[i64]) -> Dims6 {
    assert!(shape.len() <= 6 && strides.len() == shape.len(), "make_dims: rank");
    let mut d = Dims6 { rank: shape.len() as i32, ..Dims6::default() };
    d.shape[..shape.len()].copy_from_slice(shape);
    d.stride[..shape.len()].copy_from_slice(strides);
    d
}

/// The same view of K tensors over one shape, simplified: size-1 dimensions dropped, and each
/// dimension merged into the one before it when that is possible for all K stride sets at once
/// (stride[d-1] == stride[d] * shape[d]). The rank never grows; element order is unchanged.
pub(super) fn collapse<const K: usize>(shape: &[i64], strides: [&[i64]; K]) -> (Vec<i64>, [Vec<i64>; K]) {
    let mut out_shape: Vec<i64> = Vec::with_capacity(shape.len());
    let mut out_strides: [Vec<i64>; K] = std::array::from_fn(|_| Vec::with_capacity(shape.len()));
    for (d, &size) in shape.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && (0..K).all(|k| *out_strides[k].last().expect("same length as out_shape") == strides[k][d] * size);
        if mergeable {
            *out_shape.last_mut().expect("non-empty") *= size;
            for k in 0..K {
                *out_strides[k].last_mut().expect("non-empty") = strides[k][d];
            }
        } else {
            out_shape.push(size);
            for k in 0..K {
                out_strides[k].push(strides[k][d]);
            }
        }
    }
    (out_shape, out_strides)
}

/// The widest word (<= 16 bytes) that moves `elem_bytes`-byte elements of a collapsed view as a
/// whole: possible when the innermost dimension is contiguous in every stride set, its length
/// and every other stride are multiples of the word's element count, and every base address is
/// aligned to the word. Returns (word bytes, shape, strides) in units of that word.
pub(super) fn widen<const K: usize>(
    elem_bytes: usize,
    shape: Vec<i64>,
    strides: [Vec<i64>; K],
    ptrs: &[DevPtr],
) -> (usize, Vec<i64>, [Vec<i64>; K]) {
    let Some(&inner) = shape.last() else { return (elem_bytes, shape, strides) };
    let last = shape.len() - 1;
    for word in [16usize, 8, 4, 2] {
        if word <= elem_bytes {
            break;
        }
        let k = (word / elem_bytes) as i64;
        let fits = inner % k == 0
            && strides.iter().all(|s| s[last] == 1 && s[..last].iter().all(|&x| x % k == 0))
            && ptrs.iter().all(|p| p.0.is_multiple_of(word as u64));
        if fits {
            let mut shape = shape;
            shape[last] /= k;
            let strides = strides.map(|s| {
                let mut s: Vec<i64> = s.iter().map(|&x| x / k).collect();
                s[last] = 1;
                s
            });
            return (word, shape, strides);
        }
    }
    (elem_bytes, shape, strides)
}

/// Device scratch memory for a multi-stage kernel (partial sums, descriptor tables). Freed
/// stream-ordered when dropped, so dropping it right after queueing the kernels that use it is
/// safe (see `driver`).
pub(super) fn scratch(g: &Gpu, bytes: usize) -> CudaResult<DeviceBuffer> {
    // `gpu(ordinal)` is the process-wide handle `g` came from (devices are opened once).
    super::gpu(g.ordinal())?.alloc_uninit(bytes)
}

/// A device buffer holding `bytes` (uploaded on the stream).
pub(super) fn upload_bytes(g: &Gpu, bytes: &[u8]) -> CudaResult<DeviceBuffer> {
    super::gpu(g.ordinal())?.upload(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_merges_contiguous_and_drops_ones() {
        // dense (2, 1, 3, 4) -> one dimension of 24
        let (s, [a]) = collapse(&[2, 1, 3, 4], [&[12, 12, 4, 1]]);
        assert_eq!((s, a), (vec![24], vec![1]));
        // permuted (2, 3, 4) view with strides (4, 8, 1): nothing merges
        let (s, [a]) = collapse(&[2, 3, 4], [&[4, 8, 1]]);
        assert_eq!((s, a), (vec![2, 3, 4], vec![4, 8, 1]));
        // bias broadcast against a dense (5, 6, 7): out merges (5, 6) only where b does too
        let (s, [o, b]) = collapse(&[5, 6, 7], [&[42, 7, 1], &[0, 0, 1]]);
        assert_eq!((s, o, b), (vec![30, 7], vec![7, 1], vec![0, 1]));
        // all ones: rank 0
        let (s, [a]) = collapse(&[1, 1], [&[5, 9]]);
        assert!(s.is_empty() && a.is_empty());
    }

    #[test]
    fn widen_needs_contiguity_divisibility_and_alignment() {
        let p = DevPtr(0x1000);
        // 4-byte elements, inner 8 contiguous, outer stride 12: 16-byte words (4 per row)
        let (w, s, [a, b]) = widen(4, vec![3, 8], [vec![8, 1], vec![12, 1]], &[p, p]);
        assert_eq!((w, s, a, b), (16, vec![3, 2], vec![2, 1], vec![3, 1]));
        // outer stride 6 is not a multiple of 4 elements: 8-byte words (pairs)
        let (w, s, [a]) = widen(4, vec![3, 8], [vec![6, 1]], &[p]);
        assert_eq!((w, s, a), (8, vec![3, 4], vec![3, 1]));
        // misaligned pointer: no widening
        let (w, _, _) = widen(4, vec![8], [vec![1]], &[DevPtr(0x1008)]);
        assert_eq!(w, 8);
        let (w, _, _) = widen(4, vec![8], [vec![1]], &[DevPtr(0x1004)]);
        assert_eq!(w, 4);
        let (w, _, _) = widen(2, vec![8], [vec![1]], &[DevPtr(0x1002)]);
        assert_eq!(w, 2);
        // broadcast innermost dimension: no widening
        let (w, _, _) = widen(2, vec![4, 8], [vec![1, 0]], &[p]);
        assert_eq!(w, 2);
    }

    #[test]
    fn dense_strides_are_row_major() {
        assert_eq!(dense_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(dense_strides(&[]), Vec::<i64>::new());
    }
}
