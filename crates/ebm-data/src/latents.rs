//! [`Latents`]: named continuous factors, one row per image (dSprites' scale, orientation, position ...), carried
//! by an [`ImageSet`](crate::ImageSet) beside its labels.

use crate::error::{DataError, Result};

/// A `[N, D]` table of `f32` factors with a name per column.
///
/// Equality compares the bits of the values, so that sets holding latents stay `Eq`.
#[derive(Debug, Clone)]
pub struct Latents {
    names: Vec<String>,
    values: Vec<f32>,
}

impl PartialEq for Latents {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
            && self.values.len() == other.values.len()
            && self.values.iter().zip(&other.values).all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for Latents {}

impl Latents {
    /// A table whose rows are `names.len()` values each, one row after another.
    pub fn new(names: Vec<String>, values: Vec<f32>) -> Result<Latents> {
        if names.is_empty() {
            return Err(DataError::invalid("latents", "no factor name"));
        }
        if values.len() % names.len() != 0 {
            return Err(DataError::invalid(
                "latents",
                format!("{} values is not a whole number of rows of {} factors", values.len(), names.len()),
            ));
        }
        Ok(Latents { names, values })
    }

    /// The factor names, one per column.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Factors per row.
    pub fn dim(&self) -> usize {
        self.names.len()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len() / self.names.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// All values, row after row.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Row `i`. Panics if `i >= len()`.
    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.values[i * d..(i + 1) * d]
    }

    /// The column index of factor `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The rows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Latents {
        Latents { names: self.names.clone(), values: indices.iter().flat_map(|&i| self.row(i)).copied().collect() }
    }

    /// Rows of several tables with the same names, one table after another; `None` if the names differ.
    pub fn concat(parts: &[&Latents]) -> Option<Latents> {
        let first = parts.first()?;
        if parts.iter().any(|p| p.names != first.names) {
            return None;
        }
        Some(Latents {
            names: first.names.clone(),
            values: parts.iter().flat_map(|p| p.values.iter().copied()).collect(),
        })
    }
}
