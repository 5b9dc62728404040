//! Energy-based classification: the class whose conditional energy is lowest, `argmin_y E(x, y)`.

use candle_core::{Result, Tensor};
use ebm_sampler::Energy;

/// Energies `[B, classes]` of every image under every class: one pass for a model with a logit head, otherwise
/// one pass per class under one-hot conditions. Differentiable: the result keeps every pass's graph, for losses.
pub fn class_energies<E: Energy + ?Sized>(model: &E, x: &Tensor, classes: usize) -> Result<Tensor> {
    per_class_energies(model, x, classes, false)
}

/// The values of [`class_energies`], detached pass by pass: for scoring and prediction, where a model without a
/// logit head would otherwise hold all `classes` passes' activations at once (2 GB for the Fashion-MNIST IGEBM's
/// 256-image batches).
pub fn class_energy_values<E: Energy + ?Sized>(model: &E, x: &Tensor, classes: usize) -> Result<Tensor> {
    per_class_energies(model, x, classes, true)
}

fn per_class_energies<E: Energy + ?Sized>(model: &E, x: &Tensor, classes: usize, detach: bool) -> Result<Tensor> {
    let keep = |e: Tensor| if detach { e.detach() } else { e };
    if let Some(e) = model.class_energies_at_once(x, classes) {
        return e.map(keep);
    }
    let b = x.dims()[0];
    let mut cols = Vec::with_capacity(classes);
    for c in 0..classes {
        let mut onehot = vec![0f32; b * classes];
        for i in 0..b {
            onehot[i * classes + c] = 1.0;
        }
        let cond = Tensor::from_vec(onehot, (b, classes), x.device())?;
        cols.push(keep(model.energy(x, Some(&cond))?));
    }
    Tensor::stack(&cols, 1)
}

/// `argmin_y E(x, y)` for each image, in batches of `batch`.
pub fn predict<E: Energy + ?Sized>(model: &E, x: &Tensor, classes: usize, batch: usize) -> Result<Vec<u32>> {
    let n = x.dims()[0];
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let e = class_energy_values(model, &x.narrow(0, start, len)?, classes)?;
        out.extend(e.argmin(1)?.to_vec1::<u32>()?);
        start += len;
    }
    Ok(out)
}

/// Fraction of predictions equal to the labels.
pub fn accuracy(pred: &[u32], labels: &[u32]) -> f64 {
    let hit = pred.iter().zip(labels).filter(|(p, l)| p == l).count();
    hit as f64 / labels.len().max(1) as f64
}

/// `m[true][pred]` counts.
pub fn confusion(pred: &[u32], labels: &[u32], classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    for (p, l) in pred.iter().zip(labels) {
        if (*l as usize) < classes && (*p as usize) < classes {
            m[*l as usize][*p as usize] += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn argmin_of_a_hand_made_energy() {
        // E(x, y) = (x0 - y)^2: the nearest integer class wins
        let e = |x: &Tensor, c: Option<&Tensor>| -> Result<Tensor> {
            let c = c.unwrap();
            let y = c.argmax(1)?.to_dtype(candle_core::DType::F32)?;
            (x.narrow(1, 0, 1)?.squeeze(1)? - y)?.sqr()
        };
        let x = Tensor::new(&[[0.1f32], [2.2], [0.9], [2.6]], &Device::Cpu).unwrap();
        let p = predict(&e, &x, 3, 3).unwrap();
        assert_eq!(p, vec![0, 2, 1, 2]);
        assert_eq!(accuracy(&p, &[0, 2, 1, 1]), 0.75);
        let m = confusion(&p, &[0, 2, 1, 1], 3);
        assert_eq!(m[1][2], 1);
        assert_eq!(m[2][2], 1);
    }
}
