//! Shape + strides + offset. Every view (reshape, permute, narrow, broadcast) is a new `Layout`
//! over the same storage; nothing here copies data.

use crate::error::dims;
use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    /// In elements. A stride of 0 repeats an element (broadcast).
    strides: Vec<usize>,
    offset: usize,
}

/// Row-major strides of a dense tensor of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for d in (0..shape.len()).rev() {
        strides[d] = acc;
        acc *= shape[d];
    }
    strides
}

/// NumPy broadcasting of two shapes (aligned at the trailing dimension).
pub fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::Shape(format!(
                    "{op}: shapes {} and {} cannot be broadcast (dimension {i}: {da} vs {db})",
                    dims(a),
                    dims(b)
                )))
            }
        };
    }
    Ok(out)
}

impl Layout {
    pub fn contiguous(shape: &[usize]) -> Layout {
        Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: 0 }
    }

    pub fn new(shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Layout {
        assert_eq!(shape.len(), strides.len());
        Layout { shape, strides, offset }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Dense row-major: the elements are exactly storage[offset .. offset + numel].
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for d in (0..self.rank()).rev() {
            if self.shape[d] != 1 && self.strides[d] != acc {
                return false;
            }
            acc *= self.shape[d];
        }
        true
    }

    /// One past the largest storage index this layout reaches (0 if empty).
    pub fn max_index(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        self.offset + self.shape.iter().zip(&self.strides).map(|(&n, &s)| (n - 1) * s).sum::<usize>() + 1
    }

    /// Negative axes count from the end, as in PyTorch.
    pub fn axis(&self, op: &str, axis: isize) -> Result<usize> {
        let r = self.rank() as isize;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(Error::Index(format!("{op}: axis {axis} out of range for shape {}", dims(&self.shape))));
        }
        Ok(a as usize)
    }

    /// Same elements, new shape. Only for contiguous layouts (the caller copies first otherwise).
    pub fn reshape(&self, shape: &[usize]) -> Result<Layout> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(Error::Shape(format!(
                "reshape: cannot view {} ({} elements) as {} ({n} elements)",
                dims(&self.shape),
                self.numel(),
                dims(shape)
            )));
        }
        debug_assert!(self.is_contiguous());
        Ok(Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: self.offset })
    }

    /// Reorders the axes: new axis i is old axis perm[i].
    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let mut seen = vec![false; self.rank()];
        if perm.len() != self.rank() || perm.iter().any(|&p| p >= self.rank() || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::Shape(format!(
                "permute: {perm:?} is not a permutation of the {} axes of {}",
                self.rank(),
                dims(&self.shape)
            )));
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// Elements start..start+len of one axis.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Layout> {
        if axis >= self.rank() || start + len > self.shape[axis] {
            return Err(Error::Index(format!(
                "narrow: axis {axis} range {start}..{} out of bounds for shape {}",
                start + len,
                dims(&self.shape)
            )));
        }
        let mut l = self.clone();
        l.offset += start * self.strides[axis];
        l.shape[axis] = len;
        Ok(l)
    }

    /// Repeats size-1 (or missing leading) axes to reach `shape`, with stride 0.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Layout> {
        let err = || Error::Shape(format!("broadcast: cannot broadcast {} to {}", dims(&self.shape), dims(shape)));
        if shape.len() < self.rank() {
            return Err(err());
        }
        let lead = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for i in 0..self.rank() {
            let (have, want) = (self.shape[i], shape[lead + i]);
            strides[lead + i] = if have == want {
                self.strides[i]
            } else if have == 1 {
                0
            } else {
                return Err(err());
            };
        }
        Ok(Layout { shape: shape.to_vec(), strides, offset: self.offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_compose() {
        let l = Layout::contiguous(&[2, 3, 4]);
        assert!(l.is_contiguous());
        let p = l.permute(&[2, 0, 1]).unwrap();
        assert_eq!(p.shape(), &[4, 2, 3]);
        assert_eq!(p.strides(), &[1, 12, 4]);
        assert!(!p.is_contiguous());
        let n = l.narrow(1, 1, 2).unwrap();
        assert_eq!(n.offset(), 4);
        assert_eq!(n.max_index(), 24); // 4 + 1*12 + 1*4 + 3*1 + 1
        let b = Layout::contiguous(&[3, 1]).broadcast_to(&[2, 3, 5]).unwrap();
        assert_eq!(b.strides(), &[0, 1, 0]);
        assert!(Layout::contiguous(&[3, 2]).broadcast_to(&[3, 5]).is_err());
        assert!(l.permute(&[0, 0, 1]).is_err());
    }

    #[test]
    fn broadcast_rules() {
        assert_eq!(broadcast_shapes("add", &[8, 1, 4], &[3, 1]).unwrap(), vec![8, 3, 4]);
        let e = broadcast_shapes("add", &[2, 3], &[4]).unwrap_err();
        assert_eq!(e.to_string(), "add: shapes [2,3] and [4] cannot be broadcast (dimension 1: 3 vs 4)");
    }
}
