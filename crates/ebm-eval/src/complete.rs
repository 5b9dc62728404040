//! Image completion by masked Langevin dynamics (reference 4.4): the missing region of an image is re-drawn under
//! the model (and its class) while the known pixels stay exactly as they are.
//!
//! Corruptions ([`MaskKind`]): a box, the bottom half (the official `boxcorrupt` replaces rows 16..31 of 32),
//! random pixels, and salt-and-pepper (the official `anticorrupt`: 5% of pixels set to 0.1 and 5% to 0.9, the same
//! pixels in every channel). The missing pixels of a box, half or random mask start as U(0, 1) noise; salt and
//! pepper start at their corrupted values. Quality is the mean squared error over the missing region against the
//! original, next to the trivial fill (each image's missing pixels set to the mean of its known pixels, per channel).

use candle_core::{DType, Result, Tensor};
use ebm_kernels::Rng;
use ebm_sampler::{Energy, Langevin};
use serde::Serialize;

/// Which pixels are missing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MaskKind {
    /// The rectangle of rows `top..top + height` and columns `left..left + width`.
    Box { top: usize, left: usize, height: usize, width: usize },
    /// The bottom half of the rows.
    Half,
    /// Each pixel (all its channels) missing with probability `fraction`.
    Random { fraction: f32 },
    /// Each pixel set to 0.1 with probability `fraction / 2` and to 0.9 with probability `fraction / 2`.
    SaltPepper { fraction: f32 },
}

impl MaskKind {
    /// The centred box of half the side (rounded up) of an `h x w` image.
    pub fn centre_box(h: usize, w: usize) -> Self {
        let (bh, bw) = (h.div_ceil(2), w.div_ceil(2));
        MaskKind::Box { top: (h - bh) / 2, left: (w - bw) / 2, height: bh, width: bw }
    }

    /// Parses `box` (the centred box), `box:TOP,LEFT,HEIGHT,WIDTH`, `half`, `random[:FRACTION]` (default 0.5) or
    /// `salt-pepper[:FRACTION]` (default 0.1) for images of `h x w`.
    pub fn parse(s: &str, h: usize, w: usize) -> std::result::Result<Self, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let frac = |d: f32| -> std::result::Result<f32, String> {
            let f = match arg {
                Some(a) => a.parse::<f32>().map_err(|_| format!("mask `{s}`: `{a}` is not a number"))?,
                None => d,
            };
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("mask `{s}`: fraction {f} is not within [0, 1]"));
            }
            Ok(f)
        };
        match name {
            "box" => match arg {
                None => Ok(Self::centre_box(h, w)),
                Some(a) => {
                    let v: Vec<usize> = a
                        .split(',')
                        .map(|p| p.trim().parse::<usize>())
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| format!("mask `{s}`: expected box:TOP,LEFT,HEIGHT,WIDTH"))?;
                    let [top, left, height, width] = v[..] else {
                        return Err(format!("mask `{s}`: expected box:TOP,LEFT,HEIGHT,WIDTH"));
                    };
                    if height == 0 || width == 0 || top + height > h || left + width > w {
                        return Err(format!("mask `{s}`: the box does not fit in a {h}x{w} image"));
                    }
                    Ok(MaskKind::Box { top, left, height, width })
                }
            },
            "half" => Ok(MaskKind::Half),
            "random" => Ok(MaskKind::Random { fraction: frac(0.5)? }),
            "salt-pepper" | "salt-and-pepper" => Ok(MaskKind::SaltPepper { fraction: frac(0.1)? }),
            _ => Err(format!("unknown mask `{s}` (use box, box:T,L,H,W, half, random[:F] or salt-pepper[:F])")),
        }
    }

    pub fn name(&self) -> String {
        match self {
            MaskKind::Box { top, left, height, width } => format!("box {height}x{width} at ({top},{left})"),
            MaskKind::Half => "bottom half".into(),
            MaskKind::Random { fraction } => format!("random pixels ({:.0}%)", 100.0 * fraction),
            MaskKind::SaltPepper { fraction } => format!("salt and pepper ({:.0}%)", 100.0 * fraction),
        }
    }
}

/// A corrupted batch: the mask (1 = missing, same shape as the images) and the starting images.
pub struct Corrupted {
    pub mask: Tensor,
    pub start: Tensor,
}

/// Builds the mask of `kind` for images `x` `[N, C, H, W]` in [0, 1] and the corrupted start.
pub fn corrupt(x: &Tensor, kind: MaskKind, rng: &mut Rng) -> Result<Corrupted> {
    let (n, c, h, w) = x.dims4()?;
    let plane = h * w;
    let mut m = vec![0f32; n * c * plane];
    let mut fill = vec![f32::NAN; n * c * plane]; // NAN: U(0, 1) noise
    for i in 0..n {
        for p in 0..plane {
            let (r, col) = (p / w, p % w);
            let (missing, value) = match kind {
                MaskKind::Box { top, left, height, width } => {
                    ((top..top + height).contains(&r) && (left..left + width).contains(&col), None)
                }
                MaskKind::Half => (r >= h / 2, None),
                MaskKind::Random { fraction } => (rng.uniform() < fraction, None),
                MaskKind::SaltPepper { fraction } => {
                    let u = rng.uniform();
                    if u < fraction / 2.0 {
                        (true, Some(0.1))
                    } else if u < fraction {
                        (true, Some(0.9))
                    } else {
                        (false, None)
                    }
                }
            };
            if missing {
                for ch in 0..c {
                    let k = (i * c + ch) * plane + p;
                    m[k] = 1.0;
                    fill[k] = value.unwrap_or(f32::NAN);
                }
            }
        }
    }
    let xv = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let start: Vec<f32> = xv
        .iter()
        .zip(&m)
        .zip(&fill)
        .map(|((&v, &mi), &f)| {
            if mi == 0.0 {
                v
            } else if f.is_nan() {
                rng.uniform()
            } else {
                f
            }
        })
        .collect();
    let dims = x.dims().to_vec();
    Ok(Corrupted {
        mask: Tensor::from_vec(m, dims.as_slice(), x.device())?,
        start: Tensor::from_vec(start, dims.as_slice(), x.device())?,
    })
}

/// Completes `start` by Langevin dynamics restricted to `mask` (1 = free), under `cond`.
pub fn complete<E: Energy + ?Sized>(
    energy: &E,
    start: &Tensor,
    mask: &Tensor,
    cond: Option<&Tensor>,
    sampler: &Langevin,
    seed: u64,
) -> Result<Tensor> {
    Ok(sampler.run(energy, start, cond, Some(mask), seed)?.x)
}

/// Each image's missing pixels set to the mean of its known pixels (per channel).
pub fn trivial_fill(start: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let known = (1.0 - mask)?;
    let s = (start * &known)?.sum_keepdim((2, 3))?;
    let cnt = known.sum_keepdim((2, 3))?.maximum(1.0)?;
    let mean = s.broadcast_div(&cnt)?;
    (start * &known)? + mask.broadcast_mul(&mean)?
}

/// Per-image mean squared error over the masked entries (images with no masked entry give 0).
pub fn masked_mse(a: &Tensor, b: &Tensor, mask: &Tensor) -> Result<Vec<f64>> {
    let se = ((a - b)?.sqr()? * mask)?.flatten_from(1)?.sum(1)?;
    let cnt = mask.flatten_from(1)?.sum(1)?.maximum(1.0)?;
    (se / cnt)?.to_dtype(DType::F64)?.to_vec1::<f64>()
}

/// Mean of a slice.
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn masks_parse_and_cover_what_they_say() {
        assert_eq!(MaskKind::parse("box", 8, 8).unwrap(), MaskKind::Box { top: 2, left: 2, height: 4, width: 4 });
        assert_eq!(
            MaskKind::parse("box:0,1,2,3", 8, 8).unwrap(),
            MaskKind::Box { top: 0, left: 1, height: 2, width: 3 }
        );
        assert!(MaskKind::parse("box:7,7,2,2", 8, 8).unwrap_err().contains("does not fit"));
        assert!(MaskKind::parse("blob", 8, 8).unwrap_err().contains("unknown mask"));
        assert!(MaskKind::parse("random:1.5", 8, 8).is_err());
        let x = Tensor::full(0.5f32, (3, 2, 8, 8), &Device::Cpu).unwrap();
        let mut r = Rng::new(0);
        let half = corrupt(&x, MaskKind::Half, &mut r).unwrap();
        assert_eq!(half.mask.sum_all().unwrap().to_scalar::<f32>().unwrap(), (3 * 2 * 32) as f32);
        // salt and pepper: the same pixels in every channel, values 0.1 / 0.9 there
        let sp = corrupt(&x, MaskKind::SaltPepper { fraction: 0.5 }, &mut r).unwrap();
        let m = sp.mask.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let s = sp.start.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in 0..3 {
            for p in 0..64 {
                let (a, b) = ((i * 2) * 64 + p, (i * 2 + 1) * 64 + p);
                assert_eq!(m[a], m[b]);
                if m[a] == 1.0 {
                    assert!(s[a] == 0.1 || s[a] == 0.9);
                } else {
                    assert_eq!(s[a], 0.5);
                }
            }
        }
    }

    #[test]
    fn completion_under_a_correlated_gaussian_beats_the_trivial_fill() {
        // images x = a * v + small noise with a random per image: the known half reveals a, so the model can
        // predict the missing half, while the trivial fill (the known pixels' mean) cannot
        let (n, side) = (32usize, 4usize);
        let d = side * side;
        let v: Vec<f32> = (0..d).map(|i| 0.2 + 0.6 * (i % 5) as f32 / 4.0).collect();
        let vt = Tensor::from_slice(&v, (1, 1, side, side), &Device::Cpu).unwrap();
        let s2 = 0.02f64 * 0.02;
        // E(x) = |x - a* v|^2 / (2 s^2) minimised over a: the negative log-density of the family, up to a constant
        let vv: f64 = v.iter().map(|p| (*p as f64).powi(2)).sum();
        let energy = move |x: &Tensor, _: Option<&Tensor>| -> Result<Tensor> {
            let proj = (x.broadcast_mul(&vt)?.sum_keepdim((1, 2, 3))? / vv)?; // a* per image
            let r = x.broadcast_sub(&proj.broadcast_mul(&vt)?)?;
            r.sqr()?.flatten_from(1)?.sum(1)? / (2.0 * s2)
        };
        let mut rng = Rng::new(4);
        let mut xs = Vec::new();
        for _ in 0..n {
            let a = 0.3 + 0.7 * rng.uniform();
            xs.extend(v.iter().map(|p| (a * p + 0.005 * rng.normal()).clamp(0.0, 1.0)));
        }
        let x = Tensor::from_vec(xs, (n, 1, side, side), &Device::Cpu).unwrap();
        let c = corrupt(&x, MaskKind::Half, &mut rng).unwrap();
        let mut sampler = Langevin::ula(1e-5, 400);
        sampler.noise_std = 0.0;
        sampler.clamp = Some((0.0, 1.0));
        let done = complete(&energy, &c.start, &c.mask, None, &sampler, 1).unwrap();
        // known pixels untouched, bit for bit
        let known = (1.0 - &c.mask).unwrap();
        let diff =
            ((&done - &x).unwrap() * &known).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
        let ours = mean(&masked_mse(&done, &x, &c.mask).unwrap());
        let trivial = mean(&masked_mse(&trivial_fill(&c.start, &c.mask).unwrap(), &x, &c.mask).unwrap());
        let noise = mean(&masked_mse(&c.start, &x, &c.mask).unwrap());
        assert!(ours < 0.2 * trivial && trivial < noise, "completion {ours}, trivial fill {trivial}, noise {noise}");
    }
}
