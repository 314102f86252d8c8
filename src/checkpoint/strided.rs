//! Tensors of a pickled checkpoint as views (`size`, `stride`, `offset`) of their flat storages, checked before
//! libtorch sees them.

use tch::Tensor;

/// The tensor `size`/`stride` at `offset` in a flat storage of `numel` elements, bounds-checked before
/// libtorch sees it. A tensor covering its whole storage contiguously shares its memory; others are copied.
pub(crate) fn view(
    storage: &Tensor,
    numel: usize,
    offset: i64,
    size: &[i64],
    stride: &[i64],
) -> Result<Tensor, String> {
    if size.len() != stride.len() || size.len() > 64 {
        return Err(format!("invalid tensor geometry: size {size:?}, stride {stride:?}"));
    }
    if offset < 0 || size.iter().chain(stride).any(|&v| v < 0) {
        return Err(format!("negative tensor geometry: offset {offset}, size {size:?}, stride {stride:?}"));
    }
    let count = size.iter().try_fold(1i64, |acc, &s| acc.checked_mul(s)).ok_or("tensor size overflows")?;
    if count == 0 {
        return Tensor::f_zeros(size, (storage.kind(), tch::Device::Cpu)).map_err(|e| e.to_string());
    }
    let last = size
        .iter()
        .zip(stride)
        .try_fold(offset, |acc, (&s, &st)| (s - 1).checked_mul(st).and_then(|x| acc.checked_add(x)))
        .ok_or("tensor extent overflows")?;
    if last >= numel as i64 {
        return Err(format!(
            "tensor (offset {offset}, size {size:?}, stride {stride:?}) reaches element {last} of a storage of {numel}"
        ));
    }
    let mut expect = 1;
    let contiguous = size.iter().zip(stride).rev().all(|(&s, &st)| {
        let ok = s == 1 || st == expect;
        expect *= s;
        ok
    });
    let t = if offset == 0 && count == numel as i64 && contiguous {
        storage.f_reshape(size)
    } else {
        storage.f_as_strided(size, stride, offset).and_then(|t| t.f_contiguous())
    };
    t.map_err(|e| e.to_string())
}
