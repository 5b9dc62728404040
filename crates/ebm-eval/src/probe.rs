//! A factor probe: the scale, position, shape and orientation of a single sprite, measured from its pixels by the
//! moments of its foreground, in the units of [`ebm_data::shapes`] (and so of dSprites' latents).
//!
//! It judges samples of models conditioned on those factors (the compositionality experiment) without a learned
//! classifier: every number follows from geometry, and it is validated on the generator's own images.
//!
//! # Method
//!
//! - **Foreground weight** of a pixel of value `v`: `clamp((v - lo) / (hi - lo), 0, 1)` with `lo = 0.25`,
//!   `hi = 0.75` by default. Symmetric about 1/2, so anti-aliased edges keep their area on average, while a
//!   background of faint noise (a Langevin sample's) weighs nothing.
//! - **Area and centroid**: the weights' sum `A` (pixels) and mean position; the centroid maps back to `pos_x`,
//!   `pos_y` through [`ebm_data::shapes::pixel_to_pos`].
//! - **Shape**: three rotation- and scale-invariant ratios of the central complex moments `M_pq = Σ w z^p z̄^q`
//!   (`z = dx + i dy`, y up): anisotropy `|M_20| / M_11` (ellipse 0.6, square 0), threefold
//!   `|M_30| / (A (M_11/A)^1.5)` (the heart, roughly a rounded triangle) and fourfold `|M_40| / M_22` (the
//!   square's corners).
//!   The shape is the nearest of the three references, computed from large renderings of the generator's shapes.
//! - **Scale**: `sqrt(A / area(shape)) / (BASE_SIZE · side)`, with the measured shape (or a known one).
//! - **Orientation**: the phase of the moment that turns with the shape's symmetry order `n` (`M_40` square,
//!   `M_20` ellipse), relative to the unrotated reference, divided by `n`; defined modulo `2π/n` (compare with
//!   [`angle_error`]). The heart's comes from `M_30` (modulo 2π/3), the choice among those three turns from `M_20`.

use candle_core::{DType, Device, Result, Tensor};
use ebm_data::shapes::{self, Shape, Sprite};
use serde::Serialize;
use std::sync::OnceLock;

/// The foreground ramp: a pixel weighs 0 at or below `lo` and 1 at or above `hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    pub lo: f32,
    pub hi: f32,
}

impl Default for Ramp {
    fn default() -> Self {
        Ramp { lo: 0.25, hi: 0.75 }
    }
}

impl Ramp {
    fn weight(&self, v: f32) -> f64 {
        (((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)) as f64
    }
}

/// Central moments of one image's foreground (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Moments {
    mass: f64,
    cx: f64,
    cy: f64,
    m11: f64,
    m22: f64,
    m20: (f64, f64),
    m40: (f64, f64),
    m30: (f64, f64),
}

fn moments(img: &[f32], side: usize, ramp: Ramp) -> Option<Moments> {
    let (mut mass, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for (k, &v) in img.iter().enumerate() {
        let w = ramp.weight(v);
        if w > 0.0 {
            mass += w;
            sx += w * ((k % side) as f64 + 0.5);
            sy += w * ((k / side) as f64 + 0.5);
        }
    }
    if mass < 0.5 {
        return None;
    }
    let (cx, cy) = (sx / mass, sy / mass);
    let mut m = Moments { mass, cx, cy, m11: 0.0, m22: 0.0, m20: (0.0, 0.0), m40: (0.0, 0.0), m30: (0.0, 0.0) };
    for (k, &v) in img.iter().enumerate() {
        let w = ramp.weight(v);
        if w == 0.0 {
            continue;
        }
        let (x, y) = ((k % side) as f64 + 0.5 - cx, cy - ((k / side) as f64 + 0.5));
        let r2 = x * x + y * y;
        let z2 = (x * x - y * y, 2.0 * x * y);
        let z3 = (z2.0 * x - z2.1 * y, z2.0 * y + z2.1 * x);
        let z4 = (z2.0 * z2.0 - z2.1 * z2.1, 2.0 * z2.0 * z2.1);
        m.m11 += w * r2;
        m.m22 += w * r2 * r2;
        m.m20 = (m.m20.0 + w * z2.0, m.m20.1 + w * z2.1);
        m.m40 = (m.m40.0 + w * z4.0, m.m40.1 + w * z4.1);
        m.m30 = (m.m30.0 + w * z3.0, m.m30.1 + w * z3.1);
    }
    Some(m)
}

fn norm((a, b): (f64, f64)) -> f64 {
    a.hypot(b)
}

impl Moments {
    /// Anisotropy, threefold, fourfold (see the module documentation).
    fn features(&self) -> [f64; 3] {
        let m11 = self.m11.max(1e-12);
        [
            norm(self.m20) / m11,
            norm(self.m30) / (self.mass * (m11 / self.mass).powf(1.5)),
            norm(self.m40) / self.m22.max(1e-12),
        ]
    }

    /// The phases of `M_20`, `M_30` and `M_40`.
    fn phases(&self) -> [f64; 3] {
        [self.m20, self.m30, self.m40].map(|(a, b)| b.atan2(a))
    }
}

/// Per shape: its features and the phases of `M_20`, `M_30`, `M_40` at orientation 0, from a 256x256 rendering
/// with 8x8 supersampling.
fn references() -> &'static [([f64; 3], [f64; 3]); 3] {
    static R: OnceLock<[([f64; 3], [f64; 3]); 3]> = OnceLock::new();
    R.get_or_init(|| {
        Shape::ALL.map(|shape| {
            let side = 256;
            let sp = Sprite { shape, scale: 1.0, orientation: 0.0, pos_x: 0.5, pos_y: 0.5 };
            let img: Vec<f32> = shapes::render(&sp, side, 8).iter().map(|&p| p as f32 / 64.0).collect();
            let m = moments(&img, side, Ramp::default()).expect("a reference sprite has a foreground");
            (m.features(), m.phases())
        })
    })
}

/// The reference features (anisotropy, skew, fourfold) of `shape`.
pub fn reference_features(shape: Shape) -> [f64; 3] {
    references()[shape.index()].0
}

/// What the probe reads off one image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measurement {
    /// Foreground area in pixels (sum of weights).
    pub area_px: f64,
    pub pos_x: f64,
    pub pos_y: f64,
    /// The nearest reference shape.
    pub shape: Shape,
    /// Scale as if the sprite were `shape`.
    pub scale: f64,
    /// Orientation in `[0, 2π / symmetry)` as if the sprite were `shape`.
    pub orientation: f64,
    /// Anisotropy, threefold and fourfold ratios.
    pub features: [f64; 3],
    #[serde(skip)]
    moments: Moments,
    #[serde(skip)]
    side: usize,
}

impl Measurement {
    /// The scale, assuming the sprite is `shape` (for judging samples whose shape is known to the experiment).
    pub fn scale_as(&self, shape: Shape) -> f64 {
        (self.area_px / shape.area()).sqrt() / shapes::size_px(1.0, self.side)
    }

    /// The orientation in `[0, 2π / symmetry)`, assuming the sprite is `shape`.
    pub fn orientation_as(&self, shape: Shape) -> f64 {
        let (now, at0) = (self.moments.phases(), references()[shape.index()].1);
        // the angle by which harmonic n (1-based index n-2 in the phases) has turned, modulo 2π/n
        let turned = |n: usize| ((now[n - 2] - at0[n - 2]) / n as f64).rem_euclid(std::f64::consts::TAU / n as f64);
        match shape {
            Shape::Square => turned(4),
            Shape::Ellipse => turned(2),
            // the direction modulo 2π/3 from the strong M_30; which of its three turns, from M_20 (modulo π)
            Shape::Heart => {
                let (axis, three) = (turned(2), turned(3));
                let third = std::f64::consts::TAU / 3.0;
                (0..3)
                    .map(|k| three + k as f64 * third)
                    .min_by(|a, b| angle_error(*a, axis, 2).total_cmp(&angle_error(*b, axis, 2)))
                    .expect("three candidates")
            }
        }
    }

    /// The measured factors as a [`Sprite`] (the generator's description).
    pub fn sprite(&self) -> Sprite {
        Sprite {
            shape: self.shape,
            scale: self.scale as f32,
            orientation: self.orientation as f32,
            pos_x: self.pos_x as f32,
            pos_y: self.pos_y as f32,
        }
    }
}

/// Measures one `side x side` image (row-major values in `[0, 1]`) with the default [`Ramp`]; `None` when it has
/// (almost) no foreground.
pub fn measure(img: &[f32], side: usize) -> Option<Measurement> {
    measure_with(img, side, Ramp::default())
}

/// [`measure`] with another foreground ramp.
pub fn measure_with(img: &[f32], side: usize, ramp: Ramp) -> Option<Measurement> {
    assert_eq!(img.len(), side * side, "the probe takes one {side}x{side} channel");
    let m = moments(img, side, ramp)?;
    let f = m.features();
    let dist = |r: &[f64; 3]| (0..3).map(|k| (f[k] - r[k]).powi(2)).sum::<f64>();
    let shape = Shape::ALL
        .into_iter()
        .min_by(|a, b| dist(&reference_features(*a)).total_cmp(&dist(&reference_features(*b))))
        .expect("three shapes");
    let mut out = Measurement {
        area_px: m.mass,
        pos_x: shapes::pixel_to_pos(m.cx, side),
        pos_y: shapes::pixel_to_pos(m.cy, side),
        shape,
        scale: 0.0,
        orientation: 0.0,
        features: f,
        moments: m,
        side,
    };
    out.scale = out.scale_as(shape);
    out.orientation = out.orientation_as(shape);
    Some(out)
}

/// Measures every image of a `[N, 1, S, S]` (or `[N, S, S]`) batch.
pub fn measure_batch(x: &Tensor) -> Result<Vec<Option<Measurement>>> {
    let dims = x.dims().to_vec();
    let (n, h, w) = match dims[..] {
        [n, 1, h, w] | [n, h, w] => (n, h, w),
        _ => candle_core::bail!("the probe takes [N, 1, S, S] or [N, S, S] images, got {dims:?}"),
    };
    if h != w {
        candle_core::bail!("the probe takes square images, got {h}x{w}");
    }
    let v = x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok((0..n).map(|i| measure(&v[i * h * w..(i + 1) * h * w], h)).collect())
}

/// The distance between two orientations of a shape with `symmetry`-fold symmetry, in `[0, π / symmetry]`.
pub fn angle_error(a: f64, b: f64, symmetry: u32) -> f64 {
    let period = std::f64::consts::TAU / symmetry.max(1) as f64;
    let d = (a - b).rem_euclid(period);
    d.min(period - d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_data::shapes::ShapesConfig;

    /// The worst error of each factor over `n` sprites of every factor's full range, and the shape accuracy.
    fn errors(side: usize, scale_lo: f32, n: usize, supersample: u32) -> ([f64; 4], f64) {
        let cfg = ShapesConfig {
            side,
            train: n,
            test: 1,
            supersample,
            scale: shapes::Span { lo: scale_lo, hi: 1.0 },
            seed: 7,
            ..Default::default()
        };
        let (set, _) = cfg.generate("probe").unwrap();
        let lat = set.latents().unwrap();
        let div = (set.levels() - 1) as f32;
        let mut worst = [0.0f64; 4];
        let mut right = 0;
        for i in 0..set.len() {
            let img: Vec<f32> = set.image(i).iter().map(|&p| p as f32 / div).collect();
            let truth = Sprite::from_latents(lat.row(i)).unwrap();
            let m = measure(&img, side).expect("a sprite is never empty");
            right += (m.shape == truth.shape) as usize;
            let sh = truth.shape;
            let e = [
                (m.scale_as(sh) - truth.scale as f64).abs(),
                (m.pos_x - truth.pos_x as f64).abs(),
                (m.pos_y - truth.pos_y as f64).abs(),
                angle_error(m.orientation_as(sh), truth.orientation as f64, sh.symmetry()),
            ];
            for k in 0..4 {
                worst[k] = worst[k].max(e[k]);
            }
        }
        (worst, right as f64 / set.len() as f64)
    }

    /// The stated tolerances (worst case over the sprites drawn). 64x64, every factor varying: scale within 0.02
    /// (of 0.5..1), position within 0.01 of the [0, 1] range (a third of a pixel), orientation within 4 degrees
    /// (modulo each shape's symmetry), shape right for 99%. 32x32 (sprites down to 5 pixels across): scale within
    /// 0.04, position 0.02, shape right for 95%, and orientation within 8 degrees for sprites of scale 0.7 and up
    /// (a 5-pixel heart's orientation is not measurable).
    #[test]
    fn the_probe_recovers_the_generators_factors() {
        let (w, acc) = errors(64, 0.5, 300, 4);
        assert!(w[0] < 0.02 && w[1] < 0.01 && w[2] < 0.01 && w[3] < 4f64.to_radians(), "64x64: {w:?}");
        assert!(acc >= 0.99, "64x64 shape accuracy {acc}");
        let (w, acc) = errors(32, 0.5, 300, 4);
        assert!(w[0] < 0.04 && w[1] < 0.02 && w[2] < 0.02, "32x32: {w:?}");
        assert!(acc >= 0.95, "32x32 shape accuracy {acc}");
        let (w, _) = errors(32, 0.7, 200, 4);
        assert!(w[3] < 8f64.to_radians(), "32x32 orientation at scale >= 0.7: {w:?}");
    }

    /// Binary sprites (dSprites' rendering) still give position and scale to about a pixel.
    #[test]
    fn binary_sprites_and_noise() {
        let (w, acc) = errors(64, 0.5, 100, 1);
        assert!(w[0] < 0.04 && w[1] < 0.015 && w[2] < 0.015, "binary 64x64: {w:?}");
        assert!(acc >= 0.95, "binary shape accuracy {acc}");
        // faint background noise below the ramp changes nothing; an empty image measures nothing
        let sp = Sprite { shape: Shape::Square, scale: 0.8, orientation: 0.0, pos_x: 0.2, pos_y: 0.7 };
        let img: Vec<f32> = shapes::render(&sp, 32, 4).iter().map(|&p| p as f32 / 16.0).collect();
        let noisy: Vec<f32> =
            img.iter().enumerate().map(|(k, &v)| v.max(0.2 * ((k * 7919 % 13) as f32 / 13.0))).collect();
        assert_eq!(measure(&img, 32).unwrap().area_px, measure(&noisy, 32).unwrap().area_px);
        assert!(measure(&[0.1; 32 * 32], 32).is_none());
        // the batch form agrees with the single one
        let t = Tensor::from_vec(img.clone(), (1, 1, 32, 32), &Device::Cpu).unwrap();
        assert_eq!(measure_batch(&t).unwrap()[0], measure(&img, 32));
    }

    #[test]
    fn angle_error_respects_symmetry() {
        use std::f64::consts::PI;
        assert!((angle_error(0.1, PI / 2.0 - 0.1, 4) - 0.2).abs() < 1e-12);
        assert!((angle_error(0.0, PI, 2)).abs() < 1e-12);
        assert!((angle_error(0.0, PI, 1) - PI).abs() < 1e-12);
    }
}
